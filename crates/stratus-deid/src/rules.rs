//! The allow-list, parsed once from `data/rules.txt` and `data/extensions.txt` into resolved
//! per-type field tables (inheritance applied, dotted BackboneElement fields nested).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use stratus_fhir::elements::{ElementType, element};

use crate::DeidError;

/// What happens to one element.
#[derive(Debug, Clone)]
pub enum Action {
    Val,
    Mask,
    /// Masked in the ETL (kept for NLP, which Stratus does not do here).
    MaskNote,
    AnonId,
    AnonRef,
    Year,
    Zip,
    /// Free text that philter would clean; kept.
    Philter,
    /// Epic custom codes (`urn:oid:1.2.840.114350.*`) follow the code rule; else the inner action.
    CheckSystem(Box<Action>),
    /// Recurse with the rules of a type.
    Type(Arc<str>),
    /// Recurse if the element's `key` is one of `values`, else drop the element.
    TypeIf {
        name: Arc<str>,
        key: String,
        values: Vec<String>,
    },
    /// Scrub as a resource of its own `resourceType` (contained resources).
    Resource,
    /// A BackboneElement with its own fields.
    Backbone(Arc<Fields>),
}

/// One allowed element: its action, and whether R4 makes it a list.
#[derive(Debug, Clone)]
pub struct Field {
    pub action: Action,
    /// `Some(true)` for a list (`0..*`), `Some(false)` for one value; `None` where the R4
    /// element table does not know the element (abstract types, unknown resources). A value
    /// of the other shape is rejected: the lake's columns follow R4, and one such resource
    /// would otherwise fail the write of its whole batch.
    pub list: Option<bool>,
}

/// Resolved field table of one type or backbone element.
#[derive(Debug, Default)]
pub struct Fields {
    pub map: HashMap<String, Field>,
}

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Action> {
        self.map.get(key).map(|f| &f.action)
    }

    pub fn field(&self, key: &str) -> Option<&Field> {
        self.map.get(key)
    }
}

/// The whole rule set.
#[derive(Debug)]
pub struct RuleSet {
    types: HashMap<String, Arc<Fields>>,
    pub extensions_allowed: HashSet<String>,
    pub extensions_ignored: HashSet<String>,
    pub modifiers_allowed: HashSet<String>,
}

const RULES: &str = include_str!("../data/rules.txt");
const EXTENSIONS: &str = include_str!("../data/extensions.txt");

impl RuleSet {
    /// The built-in rules (parsed once).
    pub fn builtin() -> &'static RuleSet {
        static SET: OnceLock<RuleSet> = OnceLock::new();
        SET.get_or_init(|| {
            #[allow(clippy::expect_used)]
            RuleSet::parse(RULES, EXTENSIONS).expect("the built-in rules parse (tested)")
        })
    }

    /// The fields of a type; unknown types get the `Resource` rules.
    pub fn fields(&self, name: &str) -> &Arc<Fields> {
        self.types
            .get(name)
            .or_else(|| self.types.get("Resource"))
            .unwrap_or_else(|| unreachable_fields())
    }

    pub fn parse(rules: &str, extensions: &str) -> Result<RuleSet, DeidError> {
        let mut raw: Raw = HashMap::new();
        for (n, line) in rules.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |m: &str| DeidError::Rules(format!("rules.txt:{}: {m}", n + 1));
            let (head, body) = line.split_once('|').ok_or_else(|| bad("no '|'"))?;
            let (name, parent) = head.split_once('<').ok_or_else(|| bad("no '<'"))?;
            let parent = parent.trim();
            let mut fields = Vec::new();
            for f in body.split(',') {
                let (k, a) = f
                    .trim()
                    .split_once('=')
                    .ok_or_else(|| bad("field without '='"))?;
                fields.push((k.trim().to_owned(), a.trim().to_owned()));
            }
            raw.insert(
                name.trim().to_owned(),
                ((parent != "-").then(|| parent.to_owned()), fields),
            );
        }
        let mut resolved: HashMap<String, Arc<Fields>> = HashMap::new();
        let names: Vec<String> = raw.keys().cloned().collect();
        for n in &names {
            resolve(n, &raw, &mut resolved, 0)?;
        }
        for f in resolved.values() {
            check_types(f, &resolved)?;
        }
        let mut lists: HashMap<&str, HashSet<String>> = HashMap::new();
        let mut section = "";
        for line in extensions.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = match s {
                    "normal.allowed" => "allowed",
                    "normal.ignored" => "ignored",
                    "modifier.allowed" => "modifier",
                    other => {
                        return Err(DeidError::Rules(format!(
                            "extensions.txt: unknown section [{other}]"
                        )));
                    }
                };
                continue;
            }
            lists.entry(section).or_default().insert(line.to_owned());
        }
        Ok(RuleSet {
            types: resolved,
            extensions_allowed: lists.remove("allowed").unwrap_or_default(),
            extensions_ignored: lists.remove("ignored").unwrap_or_default(),
            modifiers_allowed: lists.remove("modifier").unwrap_or_default(),
        })
    }
}

fn unreachable_fields() -> &'static Arc<Fields> {
    static EMPTY: OnceLock<Arc<Fields>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Fields::default()))
}

type Raw = HashMap<String, (Option<String>, Vec<(String, String)>)>;

fn resolve(
    name: &str,
    raw: &Raw,
    out: &mut HashMap<String, Arc<Fields>>,
    depth: usize,
) -> Result<Arc<Fields>, DeidError> {
    if let Some(f) = out.get(name) {
        return Ok(Arc::clone(f));
    }
    if depth > 20 {
        return Err(DeidError::Rules(format!(
            "rules.txt: {name} extends itself"
        )));
    }
    let (parent, fields) = raw
        .get(name)
        .ok_or_else(|| DeidError::Rules(format!("rules.txt: unknown type {name}")))?;
    let backbone = if name == "BackboneElement" || name == "Element" {
        None
    } else {
        Some(resolve("BackboneElement", raw, out, depth + 1)?)
    };
    let mut map = build(fields, backbone.as_deref(), name)?;
    if let Some(p) = parent {
        let pf = resolve(p, raw, out, depth + 1)?;
        for (k, v) in &pf.map {
            // The parent's rule wins, with the cardinality the element has here.
            map.insert(k.clone(), field(name, k, v.action.clone()));
        }
    }
    let f = Arc::new(Fields { map });
    out.insert(name.to_owned(), Arc::clone(&f));
    Ok(f)
}

/// Builds the field table of `owner` (a type name or an R4 backbone path such as
/// `Encounter.participant`); dotted keys become nested BackboneElement tables.
fn build(
    fields: &[(String, String)],
    backbone: Option<&Fields>,
    owner: &str,
) -> Result<HashMap<String, Field>, DeidError> {
    let mut map = HashMap::new();
    let mut nested: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (k, a) in fields {
        match k.split_once('.') {
            Some((head, rest)) => match nested.iter_mut().find(|(h, _)| h == head) {
                Some((_, v)) => v.push((rest.to_owned(), a.clone())),
                None => nested.push((head.to_owned(), vec![(rest.to_owned(), a.clone())])),
            },
            None => {
                map.insert(k.clone(), field(owner, k, parse_action(a)?));
            }
        }
    }
    for (head, sub) in nested {
        // The backbone's own R4 path, e.g. `Dosage.doseAndRate` under `Dosage`.
        let path = match element(owner, &head).map(|e| e.ty) {
            Some(ElementType::Complex(p)) => p.to_owned(),
            _ => format!("{owner}.{head}"),
        };
        let mut inner = build(&sub, backbone, &path)?;
        if let Some(b) = backbone {
            for (k, v) in &b.map {
                inner
                    .entry(k.clone())
                    .or_insert_with(|| field(&path, k, v.action.clone()));
            }
        }
        let action = Action::Backbone(Arc::new(Fields { map: inner }));
        map.insert(head.clone(), field(owner, &head, action));
    }
    Ok(map)
}

/// An element of `owner` with its R4 cardinality, where the element table knows it.
fn field(owner: &str, key: &str, action: Action) -> Field {
    Field {
        list: element(owner, key).map(|e| e.is_list),
        action,
    }
}

fn parse_action(a: &str) -> Result<Action, DeidError> {
    Ok(match a {
        "val" => Action::Val,
        "mask" => Action::Mask,
        "mask-note" => Action::MaskNote,
        "anon-id" => Action::AnonId,
        "anon-ref" => Action::AnonRef,
        "year" => Action::Year,
        "zip" => Action::Zip,
        "philter" => Action::Philter,
        "Resource" => Action::Resource,
        "CC" => Action::Type("CodeableConcept".into()),
        "Ref" => Action::Type("Reference".into()),
        other => {
            if let Some(inner) = other.strip_prefix("check-system;") {
                return Ok(Action::CheckSystem(Box::new(parse_action(inner)?)));
            }
            let mut parts = other.split(';');
            let name = parts.next().unwrap_or_default();
            if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(DeidError::Rules(format!("unknown action '{other}'")));
            }
            let conds: Vec<&str> = parts.collect();
            if conds.is_empty() {
                Action::Type(name.into())
            } else {
                let mut key = String::new();
                let mut values = Vec::new();
                for c in conds {
                    let (k, v) = c
                        .split_once('=')
                        .ok_or_else(|| DeidError::Rules(format!("bad condition in '{other}'")))?;
                    key = k.to_owned();
                    values.push(v.to_owned());
                }
                Action::TypeIf {
                    name: name.into(),
                    key,
                    values,
                }
            }
        }
    })
}

fn check_types(f: &Fields, all: &HashMap<String, Arc<Fields>>) -> Result<(), DeidError> {
    for a in f.map.values() {
        match &a.action {
            Action::Type(n) | Action::TypeIf { name: n, .. } if !all.contains_key(&**n) => {
                return Err(DeidError::Rules(format!("rules.txt: unknown type {n}")));
            }
            Action::Backbone(inner) => check_types(inner, all)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_resolve() {
        let r = RuleSet::parse(RULES, EXTENSIONS).unwrap();
        assert_eq!(r.extensions_allowed.len(), 86);
        assert_eq!(r.extensions_ignored.len(), 18);
        assert_eq!(r.modifiers_allowed.len(), 2);
        let cond = r.fields("Condition");
        // Inherited from Resource and DomainResource; text is not allowed.
        for k in [
            "resourceType",
            "id",
            "meta",
            "extension",
            "modifierExtension",
            "contained",
        ] {
            assert!(cond.get(k).is_some(), "{k}");
        }
        assert!(cond.get("text").is_none());
        assert!(cond.get("note").is_none());
        let Some(Action::Backbone(stage)) = cond.get("stage") else {
            panic!("stage is a backbone element")
        };
        assert!(stage.get("summary").is_some() && stage.get("modifierExtension").is_some());
        // Three levels of dots.
        let mr = r.fields("MedicationRequest");
        let Some(Action::Backbone(dr)) = mr.get("dispenseRequest") else {
            panic!()
        };
        assert!(matches!(dr.get("initialFill"), Some(Action::Backbone(_))));
        assert!(matches!(
            r.fields("Practitioner").get("identifier"),
            Some(Action::TypeIf { .. })
        ));
        // Unknown types get the Resource rules.
        assert!(r.fields("Binary").get("data").is_none());
        assert!(r.fields("Binary").get("id").is_some());
    }
}
