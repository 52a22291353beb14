//! The ETL tasks: one per resource type, named (and writing the table named) as cumulus-etl
//! does, always in the same order: Encounter and Patient first.

/// `(task and table name, resource type)`, in run order.
pub const TASKS: [(&str, &str); 20] = [
    ("encounter", "Encounter"),
    ("patient", "Patient"),
    ("allergyintolerance", "AllergyIntolerance"),
    ("condition", "Condition"),
    ("device", "Device"),
    ("diagnosticreport", "DiagnosticReport"),
    ("documentreference", "DocumentReference"),
    ("episodeofcare", "EpisodeOfCare"),
    ("immunization", "Immunization"),
    ("location", "Location"),
    ("medication", "Medication"),
    ("medicationdispense", "MedicationDispense"),
    ("medicationrequest", "MedicationRequest"),
    ("observation", "Observation"),
    ("organization", "Organization"),
    ("practitioner", "Practitioner"),
    ("practitionerrole", "PractitionerRole"),
    ("procedure", "Procedure"),
    ("servicerequest", "ServiceRequest"),
    ("specimen", "Specimen"),
];

pub const COMPLETION: &str = "etl__completion";
pub const COMPLETION_ENCOUNTERS: &str = "etl__completion_encounters";

/// Chooses tasks from `--task` values (any case, comma-separated) minus `--exclude-resources`
/// values, in run order. Empty `task` means all.
pub fn select(
    task: &[String],
    exclude: &[String],
) -> Result<Vec<(&'static str, &'static str)>, String> {
    let split = |v: &[String]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let wanted = split(task);
    let excluded = split(exclude);
    for w in wanted.iter().chain(excluded.iter()) {
        if !TASKS.iter().any(|(n, _)| n == w) {
            return Err(format!(
                "unknown task '{w}'; choose from: {}",
                TASKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(TASKS
        .iter()
        .copied()
        .filter(|(n, _)| wanted.is_empty() || wanted.iter().any(|w| w == n))
        .filter(|(n, _)| !excluded.iter().any(|w| w == n))
        .collect())
}
