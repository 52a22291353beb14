//! The FHIR R4 element table (placeholder until the generated table lands).

const RESOURCE_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Binary",
    "Bundle",
    "CarePlan",
    "CareTeam",
    "Claim",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "ExplanationOfBenefit",
    "Group",
    "ImagingStudy",
    "Immunization",
    "Location",
    "Medication",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "OperationOutcome",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "ServiceRequest",
    "Specimen",
];

/// Every R4 resource type name, sorted.
pub fn resource_types() -> &'static [&'static str] {
    RESOURCE_TYPES
}

/// The canonical spelling of an R4 resource type, if `name` is one (case-sensitive).
pub fn resource_type(name: &str) -> Option<&'static str> {
    RESOURCE_TYPES
        .binary_search(&name)
        .ok()
        .map(|i| RESOURCE_TYPES[i])
}
