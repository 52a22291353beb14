//! The `$import` kick-off body: a FHIR Parameters resource with `exportUrl`, `exportType`
//! and any Bulk Data export kick-off parameter, which the consumer passes on to the
//! provider's `$export` as the proposal requires.

use serde_json::{Value, json};
use stratus_bulk::{ExportSpec, Level};

/// `dynamic`: `exportUrl` is a `$export` kick-off URL; `static`: it is a complete manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportType {
    Dynamic,
    Static,
}

impl ExportType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportType::Dynamic => "dynamic",
            ExportType::Static => "static",
        }
    }
}

/// A parsed kick-off.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    pub export_url: String,
    pub export_type: ExportType,
    /// The export parameters to repeat to the provider (the level is filled in from
    /// `exportUrl` once the provider base is known).
    pub spec: ExportSpec,
    /// Parameters dropped under `Prefer: handling=lenient`.
    pub ignored: Vec<String>,
}

/// Why a kick-off body was refused: the text of the 400 OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn err(s: impl Into<String>) -> ParamError {
    ParamError(s.into())
}

/// The value of a Parameters entry as text, whatever its `value[x]` type (a Reference
/// gives its `reference`).
fn value_text(p: &Value) -> Option<String> {
    let obj = p.as_object()?;
    for (k, v) in obj {
        if !k.starts_with("value") {
            continue;
        }
        return match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o
                .get("reference")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
    }
    None
}

/// Reads the body. `lenient` (from `Prefer: handling=lenient`) drops unknown parameters
/// instead of refusing the request.
pub fn parse(body: &Value, lenient: bool) -> Result<ImportRequest, ParamError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(err(
            "the body must be a FHIR Parameters resource (resourceType \"Parameters\")",
        ));
    }
    let params = body
        .get("parameter")
        .and_then(Value::as_array)
        .ok_or_else(|| err("the Parameters resource has no parameter array"))?;
    let mut export_url = None;
    let mut export_type = None;
    let mut spec = ExportSpec {
        post: true,
        ..ExportSpec::default()
    };
    let mut ignored = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("parameter {i} has no name")))?;
        let value = value_text(p)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| err(format!("parameter '{name}' has no value")));
        let single = |slot: &mut Option<String>, v: String| {
            if slot.replace(v).is_some() {
                Err(err(format!("parameter '{name}' is given more than once")))
            } else {
                Ok(())
            }
        };
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match name {
            "exportUrl" => single(&mut export_url, value?)?,
            // The proposal's text once spells it export_type.
            "exportType" | "export_type" => single(&mut export_type, value?)?,
            "_type" => spec.types.extend(list(value?)),
            "_since" => single(&mut spec.since, value?)?,
            "_until" => single(&mut spec.until, value?)?,
            "_outputFormat" => single(&mut spec.output_format, value?)?,
            "_elements" => spec.elements.extend(list(value?)),
            "_typeFilter" => spec.type_filters.push(value?),
            "includeAssociatedData" => spec.include_associated_data.extend(list(value?)),
            "patient" => {
                let v = value?;
                // A Reference, or a bare id as the consumer prototype expected.
                spec.patients.push(if v.contains('/') {
                    v
                } else {
                    format!("Patient/{v}")
                });
            }
            other if lenient => ignored.push(other.to_owned()),
            other => {
                return Err(err(format!(
                    "parameter '{other}' is not an import or export kick-off parameter \
                     (send Prefer: handling=lenient to have unknown parameters ignored)"
                )));
            }
        }
    }
    let export_url = export_url.ok_or_else(|| err("the exportUrl parameter is required"))?;
    let parsed = url::Url::parse(&export_url)
        .map_err(|e| err(format!("exportUrl '{export_url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(err(format!(
            "exportUrl '{export_url}' must be an http(s) URL"
        )));
    }
    // The URL is compared with the registered bases as written, so it must not be able to
    // climb out of them once a client normalises it (`/tenantA/fhir/../../tenantB`).
    let raw_path = export_url.split(['?', '#']).next().unwrap_or_default();
    if raw_path.split('/').any(|seg| {
        let l = seg.to_ascii_lowercase();
        l == "." || l == ".." || l.contains("%2e") || l.contains(';') || l.contains('\\')
    }) {
        return Err(err(format!(
            "exportUrl '{export_url}' has '.', '..' or ';' path segments"
        )));
    }
    let export_type = match export_type.as_deref() {
        None | Some("dynamic") => ExportType::Dynamic,
        Some("static") => ExportType::Static,
        Some(other) => {
            return Err(err(format!(
                "exportType '{other}' is unknown: use dynamic (a $export kick-off URL) or \
                 static (a complete export manifest)"
            )));
        }
    };
    if export_type == ExportType::Static
        && spec
            != (ExportSpec {
                post: true,
                ..Default::default()
            })
    {
        return Err(err(
            "a static import takes no export parameters: the manifest is already made",
        ));
    }
    Ok(ImportRequest {
        export_url,
        export_type,
        spec,
        ignored,
    })
}

/// Splits a `$export` kick-off URL into the FHIR base and the export level.
pub fn split_kickoff(url: &str) -> Option<(String, Level)> {
    let path = url.split(['?', '#']).next()?.trim_end_matches('/');
    let base = path.strip_suffix("/$export")?;
    if let Some(b) = base.strip_suffix("/Patient") {
        return Some((b.to_owned(), Level::Patient));
    }
    if let Some((b, id)) = base.rsplit_once("/Group/")
        && !id.is_empty()
        && !id.contains('/')
    {
        return Some((b.to_owned(), Level::Group(id.to_owned())));
    }
    Some((base.to_owned(), Level::System))
}

/// True if `url` is `base` itself or lies under it (a path boundary, not a string prefix:
/// `https://ehr/fhir-evil` is not under `https://ehr/fhir`).
pub fn is_under(url: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    match url.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

/// The Parameters body a mediator sends: `exportUrl`, `exportType`, then the export
/// parameters in the value types the proposal's client uses.
pub fn kickoff_body(export_url: &str, export_type: ExportType, spec: &ExportSpec) -> Value {
    let mut p = vec![
        json!({"name": "exportUrl", "valueUrl": export_url}),
        json!({"name": "exportType", "valueCode": export_type.as_str()}),
    ];
    if !spec.types.is_empty() {
        p.push(json!({"name": "_type", "valueString": spec.types.join(",")}));
    }
    if let Some(s) = &spec.since {
        p.push(json!({"name": "_since", "valueInstant": s}));
    }
    if let Some(s) = &spec.until {
        p.push(json!({"name": "_until", "valueInstant": s}));
    }
    if let Some(s) = &spec.output_format {
        p.push(json!({"name": "_outputFormat", "valueString": s}));
    }
    if !spec.elements.is_empty() {
        p.push(json!({"name": "_elements", "valueString": spec.elements.join(",")}));
    }
    for f in &spec.type_filters {
        p.push(json!({"name": "_typeFilter", "valueString": f}));
    }
    for a in &spec.include_associated_data {
        p.push(json!({"name": "includeAssociatedData", "valueCode": a}));
    }
    for pt in &spec.patients {
        let reference = if pt.contains('/') {
            pt.clone()
        } else {
            format!("Patient/{pt}")
        };
        p.push(json!({"name": "patient", "valueReference": {"reference": reference}}));
    }
    json!({"resourceType": "Parameters", "parameter": p})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(p: Value) -> Value {
        json!({"resourceType": "Parameters", "parameter": p})
    }

    #[test]
    fn reads_every_pass_through_parameter() {
        let spec = ExportSpec {
            types: vec!["Patient".into(), "Condition".into()],
            since: Some("2024-01-01T00:00:00Z".into()),
            until: Some("2025-01-01T00:00:00Z".into()),
            type_filters: vec!["Condition?clinical-status=active".into()],
            elements: vec!["id".into()],
            patients: vec!["Patient/a".into()],
            include_associated_data: vec!["LatestProvenanceResources".into()],
            output_format: Some("application/fhir+ndjson".into()),
            post: true,
            ..Default::default()
        };
        let b = kickoff_body("http://ehr/fhir/$export", ExportType::Dynamic, &spec);
        let r = parse(&b, false).unwrap();
        assert_eq!(r.spec, spec);
        assert_eq!(r.export_type, ExportType::Dynamic);
        assert_eq!(r.export_url, "http://ehr/fhir/$export");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let url = json!({"name": "exportUrl", "valueUrl": "http://ehr/fhir/$export"});
        assert!(parse(&json!({"resourceType": "Patient"}), false).is_err());
        assert!(
            parse(&body(json!([])), false)
                .unwrap_err()
                .0
                .contains("exportUrl")
        );
        let e = parse(
            &body(json!([url, {"name": "exportType", "valueCode": "push"}])),
            false,
        )
        .unwrap_err();
        assert!(e.0.contains("'push'"), "{e}");
        let e = parse(
            &body(json!([url, {"name": "organizeOutputBy", "valueString": "Patient"}])),
            false,
        )
        .unwrap_err();
        assert!(e.0.contains("lenient"), "{e}");
        let r = parse(
            &body(json!([url, {"name": "organizeOutputBy", "valueString": "Patient"}])),
            true,
        )
        .unwrap();
        assert_eq!(r.ignored, ["organizeOutputBy"]);
        assert!(
            parse(
                &body(json!([{"name": "exportUrl", "valueUrl": "file:///etc/passwd"}])),
                false
            )
            .is_err()
        );
        assert!(
            parse(
                &body(json!([{"name": "exportUrl", "valueUrl": "http://m/x.json"},
                    {"name": "exportType", "valueCode": "static"},
                    {"name": "_type", "valueString": "Patient"}])),
                false
            )
            .is_err()
        );
        // A bare patient id, as the prototype's consumer expected, becomes a reference.
        let r = parse(
            &body(json!([url, {"name": "patient", "valueString": "p1"}])),
            false,
        )
        .unwrap();
        assert_eq!(r.spec.patients, ["Patient/p1"]);
    }

    #[test]
    fn kickoff_urls_split_into_base_and_level() {
        assert_eq!(
            split_kickoff("http://e/fhir/$export?_type=Patient"),
            Some(("http://e/fhir".into(), Level::System))
        );
        assert_eq!(
            split_kickoff("http://e/fhir/Patient/$export"),
            Some(("http://e/fhir".into(), Level::Patient))
        );
        assert_eq!(
            split_kickoff("http://e/fhir/Group/g1/$export"),
            Some(("http://e/fhir".into(), Level::Group("g1".into())))
        );
        assert_eq!(split_kickoff("http://e/fhir/Patient"), None);
    }

    #[test]
    fn dot_segments_cannot_climb_out_of_a_base() {
        for bad in [
            "http://e/a/fhir/../../b/fhir/$export",
            "http://e/a/fhir/%2E%2E/b/$export",
            "http://e/a/fhir/..;/b/$export",
        ] {
            let b = body(json!([{"name": "exportUrl", "valueUrl": bad}]));
            assert!(parse(&b, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn under_a_base_means_at_a_path_boundary() {
        assert!(is_under("https://ehr/fhir/$export", "https://ehr/fhir"));
        assert!(is_under("https://ehr/fhir", "https://ehr/fhir/"));
        assert!(!is_under(
            "https://ehr/fhir-evil/$export",
            "https://ehr/fhir"
        ));
        assert!(!is_under(
            "https://evil/https://ehr/fhir",
            "https://ehr/fhir"
        ));
    }
}
