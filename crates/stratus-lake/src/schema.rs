//! The "wide" Arrow schema cumulus-etl gives a FHIR table, built from the R4 element table
//! and the batch at hand, so that SQL over the tables finds the same columns in both tools:
//!
//! - `resourceType` first, then every element of the resource, present in the data or not;
//! - structs at the top level always, and recursively; deeper structs only if the batch has
//!   them, or if their parent is a CodeableConcept, Coding, Period or Reference (always
//!   expanded, except their `extension`);
//! - primitives at the first two levels always, deeper ones only if present (or forced);
//! - `_field` siblings (primitive extensions) as `Element` structs, only if present;
//! - `contained` as a list of one struct merging the fields present across contained types;
//! - integer → int32, decimal → float64, boolean → bool, everything else (dates included,
//!   kept as written) → string; lists → list; every column nullable.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema};
use serde_json::Value;
use stratus_fhir::elements::{self, ElementType, Primitive};

const FORCING: [&str; 4] = ["CodeableConcept", "Coding", "Period", "Reference"];

/// The schema of a batch of `resource_type` rows.
pub fn for_rows(resource_type: &str, rows: &[Value]) -> Schema {
    let mut fields = vec![Field::new("resourceType", DataType::Utf8, true)];
    let present: Vec<&Value> = rows.iter().collect();
    fields.extend(children(resource_type, &present, 0, false));
    Schema::new(fields)
}

/// The children of `owner` (a resource, datatype or backbone path), given the values of
/// the owner found in the batch.
fn children(owner: &str, values: &[&Value], level: usize, forced: bool) -> Vec<Field> {
    let Some(elements) = elements::elements_of(owner) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in elements {
        if e.name == "resourceType" || !seen.insert(e.name) {
            continue;
        }
        let vals: Vec<&Value> = values
            .iter()
            .filter_map(|v| v.get(e.name))
            .flat_map(flatten)
            .collect();
        let force_this = forced && e.name != "extension";
        let ty = match e.ty {
            ElementType::Primitive(p) => {
                if level > 1 && !force_this && vals.is_empty() {
                    None
                } else {
                    Some(primitive(p))
                }
            }
            ElementType::Complex(name) => {
                if level > 0 && !force_this && vals.is_empty() {
                    None
                } else {
                    let sub = children(name, &vals, level + 1, FORCING.contains(&name));
                    (!sub.is_empty()).then(|| DataType::Struct(Fields::from(sub)))
                }
            }
            ElementType::Resource => contained(&vals),
        };
        if let Some(ty) = ty {
            out.push(Field::new(e.name, wrap(ty, e.is_list), true));
        }
        // The `_name` sibling carries extensions of a primitive; only when present.
        if matches!(e.ty, ElementType::Primitive(_)) {
            let sunder = format!("_{}", e.name);
            let svals: Vec<&Value> = values
                .iter()
                .filter_map(|v| v.get(&sunder))
                .flat_map(flatten)
                .filter(|v| !v.is_null())
                .collect();
            if !svals.is_empty() {
                let sub = children("Element", &svals, level + 1, false);
                if !sub.is_empty() {
                    out.push(Field::new(
                        sunder,
                        wrap(DataType::Struct(Fields::from(sub)), e.is_list),
                        true,
                    ));
                }
            }
        }
    }
    out
}

/// `contained`: one struct with the fields present across the contained resources (sorted
/// by name; for a name two types define, the type last in name order wins).
fn contained(values: &[&Value]) -> Option<DataType> {
    let mut by_type: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for v in values {
        if let Some(t) = v.get("resourceType").and_then(Value::as_str) {
            by_type.entry(t.to_owned()).or_default().push(v);
        }
    }
    let mut merged: BTreeMap<String, Field> = BTreeMap::new();
    for (t, vals) in &by_type {
        for f in children(t, vals, 1, false) {
            let present = vals.iter().any(|v| v.get(f.name()).is_some());
            if present {
                merged.insert(f.name().clone(), f);
            }
        }
        merged.insert(
            "resourceType".into(),
            Field::new("resourceType", DataType::Utf8, true),
        );
    }
    if merged.is_empty() {
        return None;
    }
    Some(DataType::Struct(Fields::from(
        merged.into_values().collect::<Vec<_>>(),
    )))
}

fn flatten(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn wrap(ty: DataType, list: bool) -> DataType {
    if list {
        DataType::List(Arc::new(Field::new("item", ty, true)))
    } else {
        ty
    }
}

fn primitive(p: Primitive) -> DataType {
    match p {
        Primitive::Integer => DataType::Int32,
        Primitive::Decimal => DataType::Float64,
        Primitive::Boolean => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_and_data_driven() {
        let rows = vec![serde_json::json!({
            "resourceType": "Condition", "id": "x",
            "code": {"coding": [{"system": "s", "code": "c"}]},
            "onsetAge": {"value": 3},
            "_recordedDate": {"extension": [{"url": "u", "valueCode": "masked"}]}
        })];
        let s = for_rows("Condition", &rows);
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[0], "resourceType");
        // Every top-level element, present or not.
        for n in [
            "id",
            "subject",
            "encounter",
            "recordedDate",
            "note",
            "_recordedDate",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let code = s.field_with_name("code").unwrap();
        let DataType::Struct(cc) = code.data_type() else {
            panic!()
        };
        let coding = cc.find("coding").unwrap().1;
        let DataType::List(item) = coding.data_type() else {
            panic!()
        };
        let DataType::Struct(cf) = item.data_type() else {
            panic!()
        };
        // Coding is expanded fully because its parent is a CodeableConcept.
        assert!(cf.find("display").is_some() && cf.find("userSelected").is_some());
        let DataType::Struct(age) = s.field_with_name("onsetAge").unwrap().data_type() else {
            panic!()
        };
        assert_eq!(age.find("value").unwrap().1.data_type(), &DataType::Float64);
    }
}
