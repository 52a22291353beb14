//! The few Bundle and OperationOutcome shapes the tools exchange: deletion transaction
//! Bundles (the Bulk Data `deleted` files) and OperationOutcomes (the `error` files).

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value, json};

/// A transaction Bundle with one `DELETE Type/id` entry per pair, as Bulk Data servers
/// report deletions and as smart-fetch emulates them.
pub fn deletion_bundle<'a>(deleted: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let entries: Vec<Value> = deleted
        .into_iter()
        .map(|(t, id)| json!({"request": {"method": "DELETE", "url": format!("{t}/{id}")}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// The `(Type, id)` pairs of the DELETE entries of a Bundle; other entries are ignored.
pub fn deleted_entries(bundle: &Value) -> Vec<(String, String)> {
    let Some(entries) = bundle.get("entry").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let request = entry.get("request")?;
            if request.get("method").and_then(|m| m.as_str()) != Some("DELETE") {
                return None;
            }
            let url = request.get("url").and_then(|u| u.as_str())?;
            let url = url.split('?').next().unwrap_or(url);
            let mut parts = url.rsplitn(2, '/');
            let id = parts.next()?;
            let t = parts.next()?.rsplit('/').next()?;
            Some((t.to_owned(), id.to_owned()))
        })
        .collect()
}

/// An OperationOutcome with one issue.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_bundles_round_trip() {
        let b = deletion_bundle([("Patient", "a"), ("Encounter", "b")]);
        assert_eq!(
            deleted_entries(&b),
            vec![
                ("Patient".to_owned(), "a".to_owned()),
                ("Encounter".to_owned(), "b".to_owned())
            ]
        );
        let absolute: Value = sonic_rs::from_str(
            r#"{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"http://x/fhir/Patient/z"}},{"request":{"method":"PUT","url":"Patient/y"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            deleted_entries(&absolute),
            vec![("Patient".to_owned(), "z".to_owned())]
        );
    }
}
