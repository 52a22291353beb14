//! The patient-compartment types a crawl or managed export handles, in the order they are
//! processed, and the filters smart-fetch applies by default. Kept identical so folders
//! written by either tool mean the same.

/// Types an export may ask for, in processing order.
pub const PATIENT_TYPES: [&str; 15] = [
    "Patient",
    "Encounter",
    "AllergyIntolerance",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "EpisodeOfCare",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

/// Types that only arrive by hydration.
pub const HYDRATED_ONLY: [&str; 6] = [
    "Binary",
    "Location",
    "Medication",
    "Organization",
    "Practitioner",
    "PractitionerRole",
];

/// Every type the top-level symlinks cover.
pub fn scope_types() -> impl Iterator<Item = &'static str> {
    PATIENT_TYPES.iter().chain(HYDRATED_ONLY.iter()).copied()
}

/// Observation categories asked for when the user gives no Observation filter. Epic
/// rejects the last three.
const OBSERVATION_CATEGORIES: [&str; 9] = [
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "survey",
    "exam",
    "procedure",
    "therapy",
    "activity",
];

/// The default Observation filter (`category=...`), shorter on Epic.
pub fn default_observation_filter(epic: bool) -> String {
    let n = if epic {
        6
    } else {
        OBSERVATION_CATEGORIES.len()
    };
    format!("category={}", OBSERVATION_CATEGORIES[..n].join(","))
}

/// The canonical spelling of a type name given in any case, if it is one we export.
pub fn canonical(name: &str) -> Option<&'static str> {
    PATIENT_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(name))
        .copied()
}

/// Parses `--type` values (repeatable, comma-separated, any case, `all`) into types in
/// processing order.
pub fn parse_types(values: &[String]) -> Result<Vec<&'static str>, String> {
    let mut wanted: Vec<&'static str> = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        if v.eq_ignore_ascii_case("all") {
            wanted.extend(PATIENT_TYPES);
            continue;
        }
        match canonical(v) {
            Some(t) => wanted.push(t),
            None => {
                return Err(format!(
                    "unknown resource type '{v}'; choose from: {}",
                    PATIENT_TYPES.join(", ")
                ));
            }
        }
    }
    if wanted.is_empty() {
        wanted.extend(PATIENT_TYPES);
    }
    Ok(PATIENT_TYPES
        .iter()
        .copied()
        .filter(|t| wanted.contains(t))
        .collect())
}

/// Splits `Type?params` into its type and its query.
pub fn split_filter(filter: &str) -> Result<(&'static str, String), String> {
    let Some((t, q)) = filter.split_once('?') else {
        return Err(format!(
            "type filter '{filter}' has no '?': write it as Type?param=value"
        ));
    };
    let t = canonical(t.trim())
        .ok_or_else(|| format!("type filter '{filter}': '{t}' is not a type we export"))?;
    Ok((t, q.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_processing_order() {
        let t = parse_types(&["observation,PATIENT".into(), "Condition".into()]).unwrap();
        assert_eq!(t, ["Patient", "Condition", "Observation"]);
        assert_eq!(parse_types(&[]).unwrap().len(), 15);
        assert!(parse_types(&["Nope".into()]).unwrap_err().contains("Nope"));
    }

    #[test]
    fn filters_split() {
        assert_eq!(
            split_filter("Observation?category=laboratory").unwrap(),
            ("Observation", "category=laboratory".to_owned())
        );
        assert!(split_filter("Observation").is_err());
        assert_eq!(
            default_observation_filter(true),
            "category=social-history,vital-signs,imaging,laboratory,survey,exam"
        );
    }
}
