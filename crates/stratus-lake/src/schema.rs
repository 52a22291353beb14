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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema};
use stratus_fhir::elements::{self, ElementType, Primitive};
use stratus_fhir::sonic_rs::{self, JsonContainerTrait, JsonValueTrait};

const FORCING: [&str; 4] = ["CodeableConcept", "Coding", "Period", "Reference"];

/// Which keys a batch's rows have, merged over rows and list items: enough to build the
/// schema without keeping the rows. Folding a row walks only its own keys, so building a
/// batch's schema costs one pass over the data whatever the width of the R4 definition.
#[derive(Debug, Default)]
pub struct Presence {
    /// The key was seen with a value, or a list with at least one item.
    items: bool,
    /// ... and one of those was not `null`.
    non_null: bool,
    kids: HashMap<String, Presence>,
    /// For `contained`: the keys of the contained resources, by their `resourceType`.
    by_type: HashMap<String, Presence>,
}

impl Presence {
    /// Folds one parsed row in (or, recursively, one object in the row); anything that is
    /// not an object adds nothing.
    pub fn add_value(&mut self, v: &sonic_rs::Value) {
        let Some(obj) = v.as_object() else {
            return;
        };
        for (k, val) in obj.iter() {
            // Look up before inserting: the key is nearly always there already, and
            // `entry` would allocate its name for every key of every row.
            if !self.kids.contains_key(k) {
                self.kids.insert(k.to_owned(), Presence::default());
            }
            let Some(node) = self.kids.get_mut(k) else {
                continue;
            };
            match val.as_array() {
                Some(items) => {
                    for item in items.iter() {
                        node.add_item(k, item);
                    }
                }
                None => node.add_item(k, val),
            }
        }
    }

    fn add_item(&mut self, key: &str, item: &sonic_rs::Value) {
        self.items = true;
        if item.is_null() {
            return;
        }
        self.non_null = true;
        // A contained resource's columns come from its type alone (`contained` reads
        // `by_type`, never `kids`), so it is walked once, there.
        if key != "contained" {
            self.add_value(item);
        } else if let Some(t) = item.get("resourceType").and_then(|t| t.as_str()) {
            self.by_type
                .entry(t.to_owned())
                .or_default()
                .add_value(item);
        }
    }

    /// Folds what another set of rows had into this one.
    pub fn merge(&mut self, other: Presence) {
        self.items |= other.items;
        self.non_null |= other.non_null;
        for (k, p) in other.kids {
            self.kids.entry(k).or_default().merge(p);
        }
        for (k, p) in other.by_type {
            self.by_type.entry(k).or_default().merge(p);
        }
    }

    fn kid(&self, name: &str) -> Option<&Presence> {
        self.kids.get(name)
    }
}

/// The schema of a batch of `resource_type` rows, given what the rows have.
pub fn for_presence(resource_type: &str, present: &Presence) -> Schema {
    let mut fields = vec![Field::new("resourceType", DataType::Utf8, true)];
    fields.extend(children(resource_type, Some(present), 0, false));
    Schema::new(fields)
}

/// The children of `owner` (a resource, datatype or backbone path), given what the
/// owner's values in the batch hold (`None`: nothing).
fn children(owner: &str, node: Option<&Presence>, level: usize, forced: bool) -> Vec<Field> {
    let Some(elements) = elements::elements_of(owner) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in elements {
        if e.name == "resourceType" || !seen.insert(e.name) {
            continue;
        }
        let sub = node.and_then(|n| n.kid(e.name));
        let has = sub.is_some_and(|s| s.items);
        let force_this = forced && e.name != "extension";
        let ty = match e.ty {
            ElementType::Primitive(p) => {
                if level > 1 && !force_this && !has {
                    None
                } else {
                    Some(primitive(p))
                }
            }
            ElementType::Complex(name) => {
                if level > 0 && !force_this && !has {
                    None
                } else {
                    let sub = children(name, sub, level + 1, FORCING.contains(&name));
                    (!sub.is_empty()).then(|| DataType::Struct(Fields::from(sub)))
                }
            }
            ElementType::Resource => sub.and_then(contained),
        };
        if let Some(ty) = ty {
            out.push(Field::new(e.name, wrap(ty, e.is_list), true));
        }
        // The `_name` sibling carries extensions of a primitive; only when present.
        if matches!(e.ty, ElementType::Primitive(_)) {
            let sunder = format!("_{}", e.name);
            if let Some(s) = node.and_then(|n| n.kid(&sunder))
                && s.non_null
            {
                let sub = children("Element", Some(s), level + 1, false);
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
fn contained(node: &Presence) -> Option<DataType> {
    let by_type: BTreeMap<&String, &Presence> = node.by_type.iter().collect();
    let mut merged: BTreeMap<String, Field> = BTreeMap::new();
    for (t, p) in by_type {
        for f in children(t, Some(p), 1, false) {
            if p.kid(f.name()).is_some() {
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
        let rows = vec![
            serde_json::to_vec(&serde_json::json!({
                "resourceType": "Condition", "id": "x",
                "code": {"coding": [{"system": "s", "code": "c"}]},
                "onsetAge": {"value": 3},
                "_recordedDate": {"extension": [{"url": "u", "valueCode": "masked"}]}
            }))
            .unwrap(),
        ];
        let mut p = Presence::default();
        for r in &rows {
            p.add_value(&sonic_rs::from_slice(r).unwrap());
        }
        let s = for_presence("Condition", &p);
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
