//! The FHIR R4 element table: every resource type, and for every resource, datatype and
//! backbone element its elements with type, cardinality and choice group.
//!
//! The lake builds its "wide" Delta schemas from this table (every element of a resource,
//! present in the data or not), and file-name typing needs the list of resource names. The
//! table is generated from the `fhirclient` R4 models, which cumulus-etl builds its schemas
//! from, by `tools/gen-r4-elements/gen.py`; see the README there to regenerate it. It is
//! embedded and parsed once, on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/r4-elements.tsv");

/// A FHIR primitive type, as far as the source models distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// Every string-like type: string, code, id, uri, markdown, base64Binary, ...
    String,
    /// integer, positiveInt, unsignedInt.
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Instant,
    Time,
}

/// What an element holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    Primitive(Primitive),
    /// A datatype (`CodeableConcept`) or a backbone path (`Encounter.participant`); look it
    /// up with [`elements_of`].
    Complex(&'static str),
    /// A whole resource of any type (`contained`, `Bundle.entry.resource`).
    Resource,
}

/// One element of a resource, datatype or backbone element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    /// The JSON name (`valueQuantity`, `class`).
    pub name: &'static str,
    pub ty: ElementType,
    pub is_list: bool,
    pub required: bool,
    /// For choice elements (`value[x]`), the group name (`value`).
    pub choice_of: Option<&'static str>,
}

struct Table {
    resources: Vec<&'static str>,
    owners: HashMap<&'static str, Vec<Element>>,
    /// Rows that did not parse; a unit test keeps this at zero.
    malformed: usize,
}

fn table() -> &'static Table {
    static TABLE_CELL: OnceLock<Table> = OnceLock::new();
    TABLE_CELL.get_or_init(|| parse(TABLE))
}

fn parse(text: &'static str) -> Table {
    let mut t = Table {
        resources: Vec::new(),
        owners: HashMap::new(),
        malformed: 0,
    };
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&'static str> = line.split('\t').collect();
        match cols.as_slice() {
            ["@resource", name] => t.resources.push(name),
            [owner, name, ty, flags] => {
                let mut element = Element {
                    name,
                    ty: parse_type(ty),
                    is_list: false,
                    required: false,
                    choice_of: None,
                };
                for flag in flags.split(',').filter(|f| !f.is_empty()) {
                    let (marks, choice) = match flag.split_once("choice=") {
                        Some((marks, choice)) => (marks, Some(choice)),
                        None => (flag, None),
                    };
                    element.is_list |= marks.contains('*');
                    element.required |= marks.contains('!');
                    if choice.is_some() {
                        element.choice_of = choice;
                    }
                }
                t.owners.entry(owner).or_default().push(element);
            }
            _ => t.malformed += 1,
        }
    }
    t.resources.sort_unstable();
    t
}

fn parse_type(ty: &'static str) -> ElementType {
    match ty {
        "string" => ElementType::Primitive(Primitive::String),
        "integer" => ElementType::Primitive(Primitive::Integer),
        "decimal" => ElementType::Primitive(Primitive::Decimal),
        "boolean" => ElementType::Primitive(Primitive::Boolean),
        "date" => ElementType::Primitive(Primitive::Date),
        "dateTime" => ElementType::Primitive(Primitive::DateTime),
        "instant" => ElementType::Primitive(Primitive::Instant),
        "time" => ElementType::Primitive(Primitive::Time),
        "Resource" => ElementType::Resource,
        other => ElementType::Complex(other),
    }
}

/// Every R4 resource type name, sorted.
pub fn resource_types() -> &'static [&'static str] {
    &table().resources
}

/// The canonical spelling of an R4 resource type, if `name` is one (case-sensitive).
pub fn resource_type(name: &str) -> Option<&'static str> {
    let r = &table().resources;
    r.binary_search(&name).ok().map(|i| r[i])
}

/// Elements of a resource, datatype or backbone path, in the table's order (inherited
/// elements first).
pub fn elements_of(owner: &str) -> Option<&'static [Element]> {
    table().owners.get(owner).map(Vec::as_slice)
}

/// One element of a resource, datatype or backbone path, by its JSON name.
pub fn element(owner: &str, name: &str) -> Option<&'static Element> {
    elements_of(owner)?.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(owner: &str, name: &str) -> Element {
        *super::element(owner, name).unwrap_or_else(|| panic!("no {owner}.{name}"))
    }

    #[test]
    fn the_table_parses_completely() {
        assert_eq!(table().malformed, 0);
        assert_eq!(resource_types().len(), 146);
        assert!(resource_types().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn resource_names() {
        assert_eq!(resource_type("Patient"), Some("Patient"));
        assert_eq!(resource_type("PractitionerRole"), Some("PractitionerRole"));
        assert_eq!(resource_type("patient"), None);
        assert_eq!(resource_type("Resource"), None);
        assert_eq!(resource_type("CodeableConcept"), None);
    }

    #[test]
    fn elements_have_types_and_cardinality() {
        let birth = element("Patient", "birthDate");
        assert_eq!(birth.ty, ElementType::Primitive(Primitive::Date));
        assert!(!birth.is_list);
        let name = element("Patient", "name");
        assert_eq!(name.ty, ElementType::Complex("HumanName"));
        assert!(name.is_list);
        assert_eq!(
            element("Patient", "deceasedBoolean").choice_of,
            Some("deceased")
        );
        assert_eq!(element("Patient", "contained").ty, ElementType::Resource);
        let value = element("Observation", "valueQuantity");
        assert_eq!(
            (value.ty, value.choice_of),
            (ElementType::Complex("Quantity"), Some("value"))
        );
        let class = element("Encounter", "class");
        assert_eq!(class.ty, ElementType::Complex("Coding"));
        assert!(class.required);
        assert_eq!(
            element("Encounter", "participant").ty,
            ElementType::Complex("Encounter.participant")
        );
        assert_eq!(
            element("Encounter.participant", "individual").ty,
            ElementType::Complex("Reference")
        );
        let coding = element("CodeableConcept", "coding");
        assert_eq!(
            (coding.ty, coding.is_list),
            (ElementType::Complex("Coding"), true)
        );
        assert_eq!(
            element("Dosage", "doseAndRate").ty,
            ElementType::Complex("Dosage.doseAndRate")
        );
        assert_eq!(
            element("Meta", "lastUpdated").ty,
            ElementType::Primitive(Primitive::Instant)
        );
    }

    #[test]
    fn every_type_named_is_defined() {
        for (owner, elements) in &table().owners {
            for e in elements {
                if let ElementType::Complex(t) = e.ty {
                    assert!(
                        elements_of(t).is_some(),
                        "{owner}.{} has undefined type {t}",
                        e.name
                    );
                }
            }
        }
        for r in resource_types() {
            assert!(elements_of(r).is_some(), "resource {r} has no elements");
        }
    }
}
