//! File-name conventions shared by the tools Stratus replaces.
//!
//! Exports arrive as `1.Patient.ndjson` (bulk-data-client), `Patient.000.ndjson.gz` and
//! `Condition.001.ndjson.gz` (smart-fetch, Stratus), `Observation.members.ndjson.gz`
//! (hydration), or names that say nothing at all. Readers must accept all of them the way
//! cumulus-etl does, so a folder that works there works here.

use crate::elements;

/// True for names whose last suffix is `.ndjson` or `.jsonl`, optionally followed by `.gz`
/// (case-insensitive): the files the Cumulus tools pick up from an input folder.
pub fn is_ndjson_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    stem.ends_with(".ndjson") || stem.ends_with(".jsonl")
}

/// The resource type a file name names, when exactly one R4 resource type appears among its
/// runs of letters (`1.Patient.ndjson`, `Condition20240614.ndjson.gz`). Whole words only, so
/// `PractitionerRole` never counts as `Practitioner`. `None` when zero or several match; the
/// caller then looks at the content.
pub fn type_from_name(name: &str) -> Option<&'static str> {
    let mut found: Option<&'static str> = None;
    for word in name
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        if let Some(t) = elements::resource_type(word) {
            match found {
                Some(f) if f != t => return None,
                _ => found = Some(t),
            }
        }
    }
    found
}

/// `Type.NNN.ndjson[.gz]`, numbered from the given index with at least three digits: the
/// layout Stratus writes, which smart-fetch and cumulus-etl both read.
pub fn numbered(resource_type: &str, index: usize, gzip: bool) -> String {
    format!(
        "{resource_type}.{index:03}.ndjson{}",
        if gzip { ".gz" } else { "" }
    )
}

/// `N.Type.ndjson`: bulk-data-client's "standard file names".
pub fn standard(index: usize, resource_type: &str) -> String {
    format!("{index}.{resource_type}.ndjson")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ndjson_names() {
        for ok in [
            "a.ndjson",
            "A.NDJSON",
            "x.jsonl",
            "Patient.000.ndjson.gz",
            "b.JSONL.GZ",
        ] {
            assert!(is_ndjson_name(ok), "{ok}");
        }
        for no in [
            "a.json",
            "ndjson",
            "a.ndjson.zip",
            "a.gz",
            "a.ndjson.gz.bak",
        ] {
            assert!(!is_ndjson_name(no), "{no}");
        }
    }

    #[test]
    fn takes_type_from_whole_words() {
        assert_eq!(type_from_name("1.Patient.ndjson"), Some("Patient"));
        assert_eq!(type_from_name("Patient.000.ndjson.gz"), Some("Patient"));
        assert_eq!(
            type_from_name("Condition20240614.ndjson.gz"),
            Some("Condition")
        );
        assert_eq!(
            type_from_name("PractitionerRole.searched.ndjson.gz"),
            Some("PractitionerRole")
        );
        assert_eq!(type_from_name("Bundle.Patient.ndjson.gz"), None);
        assert_eq!(type_from_name("obs.ndjson"), None);
        assert_eq!(type_from_name("log.ndjson"), None);
        assert_eq!(type_from_name("Patient-Patient.ndjson"), Some("Patient"));
    }

    #[test]
    fn builds_names() {
        assert_eq!(numbered("Condition", 1, true), "Condition.001.ndjson.gz");
        assert_eq!(numbered("Condition", 1234, false), "Condition.1234.ndjson");
        assert_eq!(standard(2, "Patient"), "2.Patient.ndjson");
    }
}
