//! The scrubber against hand-written resources whose expected output follows the rules in
//! the cumulus-etl reference, one behaviour per test.

#![allow(clippy::unwrap_used)]

use stratus_deid::{Codebook, Scrubber};
use stratus_fhir::sonic_rs::{self, Value};

fn book() -> (tempfile::TempDir, Codebook) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("codebook.json"),
        r#"{"version": 1, "codebook_id": "test", "id_salt": "31323334"}"#,
    )
    .unwrap();
    let b = Codebook::open(dir.path()).unwrap();
    (dir, b)
}

fn scrub(json: &str) -> Result<serde_json::Value, String> {
    let (_d, b) = book();
    let s = Scrubber::new(&b);
    let mut v: Value = sonic_rs::from_str(json).unwrap();
    s.scrub(&mut v).map_err(|e| e.0)?;
    Ok(serde_json::from_str(&sonic_rs::to_string(&v).unwrap()).unwrap())
}

fn h(s: &str) -> String {
    let (_d, b) = book();
    b.hash(s)
}

#[test]
fn a_patient_keeps_only_the_allow_list() {
    let out = scrub(
        r#"{"resourceType":"Patient","id":"p1","text":{"div":"x"},
        "name":[{"family":"Doe"}],"telecom":[{"value":"555"}],"gender":"female",
        "birthDate":"1980-07-15","identifier":[{"value":"MRN"}],
        "address":[{"line":["1 Main"],"city":"Boston","state":"MA","postalCode":"02115","country":"US"}],
        "extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"},
                     {"url":"http://example.org/unknown","valueString":"x"}],
        "meta":{"lastUpdated":"2024-01-01T00:00:00Z"}}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"resourceType":"Patient","id":h("p1"),"gender":"female",
            "birthDate":"1980",
            "address":[{"state":"MA","postalCode":"02100","country":"US"}],
            "extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"}],
            "meta":{"lastUpdated":"2024-01-01T00:00:00Z"}})
    );
}

#[test]
fn references_are_rewritten_or_the_resource_is_dropped() {
    let out = scrub(
        r##"{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p1","display":"Jane"},
        "encounter":{"reference":"e9","type":"Encounter"},
        "recorder":{"reference":"#pr"},"asserter":{"display":"only a name"}}"##,
    )
    .unwrap();
    assert_eq!(
        out["subject"],
        serde_json::json!({"reference": format!("Patient/{}", h("p1"))})
    );
    assert_eq!(
        out["encounter"],
        serde_json::json!({"reference": format!("Encounter/{}", h("e9")), "type": "Encounter"})
    );
    assert_eq!(out["recorder"]["reference"], format!("#{}", h("pr")));
    assert!(
        out.get("asserter").is_none(),
        "a display-only reference is removed"
    );
    let err = scrub(
        r#"{"resourceType":"Condition","id":"c","subject":{"reference":"http://x/Patient/1"}}"#,
    )
    .unwrap_err();
    assert!(err.contains("Could not parse"), "{err}");
}

#[test]
fn masking_and_epic_codes() {
    let out = scrub(
        r#"{"resourceType":"Observation","id":"o","valueString":"secret",
        "code":{"coding":[{"system":"urn:oid:1.2.840.114350.1.13","code":"ABC","display":"Local"},
                          {"system":"urn:oid:1.2.840.114350.1.13","code":"123","display":"Kept"},
                          {"system":"http://loinc.org","code":"1-8","display":"LOINC"}],"text":"t"}}"#,
    )
    .unwrap();
    assert_eq!(
        out["_valueString"],
        serde_json::json!({"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]})
    );
    assert!(out.get("valueString").is_none());
    let c = &out["code"]["coding"];
    assert!(c[0].get("code").is_none() && c[0].get("display").is_none());
    assert_eq!(c[0]["extension"][0]["valueCode"], "masked");
    assert_eq!(c[1]["display"], "Kept");
    assert_eq!(c[2]["display"], "LOINC");
}

#[test]
fn modifier_extensions_and_shapes_reject_the_resource() {
    let err = scrub(
        r#"{"resourceType":"Condition","id":"c","modifierExtension":[{"url":"http://x","valueBoolean":true}]}"#,
    )
    .unwrap_err();
    assert!(err.contains("modifier"), "{err}");
    let err = scrub(r#"{"resourceType":"Condition","id":"c","code":"not-a-struct"}"#).unwrap_err();
    assert!(err.contains("Unexpected formatting"), "{err}");
    let err = scrub(r#"{"resourceType":"Condition","id":"c","category":[null]}"#).unwrap_err();
    assert!(err.contains("Unexpected formatting"), "{err}");
}

#[test]
fn a_shape_r4_does_not_allow_rejects_the_resource() {
    // A list where R4 allows one value, at the top, in a datatype and in a backbone element.
    let err =
        scrub(r#"{"resourceType":"Location","id":"l","address":[{"city":"X"}]}"#).unwrap_err();
    assert!(
        err.contains("'address' is a list where FHIR R4 wants one value"),
        "{err}"
    );
    let err = scrub(r#"{"resourceType":"Encounter","id":"e","period":{"start":["2020-01-01"]}}"#)
        .unwrap_err();
    assert!(err.contains("'start' (in a Period) is a list"), "{err}");
    let err = scrub(
        r#"{"resourceType":"Encounter","id":"e","participant":[{"individual":[{"reference":"Practitioner/p"}]}]}"#,
    )
    .unwrap_err();
    assert!(
        err.contains("Encounter element 'individual' is a list"),
        "{err}"
    );
    // One value where R4 wants a list.
    let err =
        scrub(r#"{"resourceType":"Condition","id":"c","category":{"text":"x"}}"#).unwrap_err();
    assert!(
        err.contains("'category' is one value where FHIR R4 wants a list"),
        "{err}"
    );
    // The right shapes pass, inherited elements included.
    scrub(
        r#"{"resourceType":"Encounter","id":"e","meta":{"lastUpdated":"2020-01-01T00:00:00Z"},"participant":[{"individual":{"reference":"Practitioner/p"},"type":[{"text":"x"}]}],"period":{"start":"2020"}}"#,
    )
    .unwrap();
}

#[test]
fn zip_codes_and_unknown_types() {
    assert_eq!(stratus_deid::scrub::zip("02115"), "02100");
    assert_eq!(stratus_deid::scrub::zip("03601-1234"), "00000-0000");
    assert_eq!(stratus_deid::scrub::zip("K1A 0B1"), "K1A 0B0");
    let out =
        scrub(r#"{"resourceType":"Binary","id":"b","data":"AAAA","contentType":"text/plain"}"#)
            .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"resourceType":"Binary","id":h("b")})
    );
}
