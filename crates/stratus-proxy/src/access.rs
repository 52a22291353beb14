//! Which scopes a request under `/fhir` needs. The upstream has no auth at all, so this is
//! the only thing between a token and the data: whatever is not recognised needs the
//! widest scope rather than none.

use axum::http::Method;
use serde_json::Value;
use stratus_smart::scope::Scopes;
use stratus_smart::server::{BearerError, Grant};

/// One thing the token's scopes must allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Read (`r`) resources of a type, `*` for all.
    Read(String),
    /// Search (`s`) a type, `*` for all.
    Search(String),
    /// Other permissions (letters of `cruds`) on a type, `*` for all.
    Perms(String, &'static str),
}

/// What has to be known before a request can be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// These checks; none means any valid token will do.
    Checks(Vec<Check>),
    /// A `$export` kick-off: read on every `_type` of the query and, for POST, of the
    /// Parameters body; read on `*` if there is none.
    Export,
    /// A POST `_search`: these checks plus those of the form body's parameters.
    SearchForm(Vec<Check>),
}

impl Plan {
    /// Whether the request body has to be read before the check.
    pub fn needs_body(&self, method: &Method) -> bool {
        match self {
            Plan::Checks(_) => false,
            Plan::Export => method == Method::POST,
            Plan::SearchForm(_) => true,
        }
    }
}

/// A resource type name as FHIR spells them (`Patient`, `MedicationRequest`).
fn is_type(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The path below the FHIR base, split and percent-decoded. Refuses what the upstream (or
/// the URL parser on the way to it) could resolve to somewhere else than the checks saw:
/// dot segments, encoded slashes and backslashes, empty segments.
pub fn segments(suffix: &str) -> Result<Vec<String>, String> {
    let trimmed = suffix.strip_prefix('/').unwrap_or(suffix);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for raw in trimmed.split('/') {
        let lower = raw.to_ascii_lowercase();
        if raw.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
            return Err(format!(
                "the path segment '{raw}' holds an encoded or back slash"
            ));
        }
        let decoded = percent_decode(raw);
        if decoded.is_empty() {
            return Err("the path has an empty segment ('//')".into());
        }
        if decoded == "." || decoded == ".." {
            return Err("the path has a '.' or '..' segment".into());
        }
        // Servlet containers (HAPI on Tomcat or Jetty) drop `;params` from a segment, so
        // `..;` would climb out of the path the scope check saw.
        if decoded.contains(';') {
            return Err(format!("the path segment '{raw}' holds a ';'"));
        }
        out.push(decoded);
    }
    Ok(out)
}

/// `%XX` escapes decoded as the upstream will decode them (a bad escape stays as it is;
/// `+` is a plus in a path).
fn percent_decode(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decoded query (or form) pairs.
pub fn pairs(query: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query).into_owned().collect()
}

fn all(perms: &'static str) -> Vec<Check> {
    vec![Check::Perms("*".into(), perms)]
}

/// Reads implied by `_include` / `_revinclude` (and their `:iterate` forms): the included
/// resources come back in the same answer, so they need reading too.
fn include_checks(pairs: &[(String, String)]) -> Vec<Check> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let base = k.split(':').next().unwrap_or_default();
        let parts: Vec<&str> = v.split(':').collect();
        let t = match base {
            // `Source:param:Target`; without a target any referenced type may come back.
            "_include" => parts.get(2).copied().filter(|t| is_type(t)).unwrap_or("*"),
            // `Source:param`: resources of Source that point at the matches.
            "_revinclude" => parts.first().copied().filter(|t| is_type(t)).unwrap_or("*"),
            _ => continue,
        };
        out.push(Check::Read(t.to_owned()));
    }
    out
}

/// The types of every `_type` value (comma-separated, possibly repeated); `None` if there
/// is no `_type` at all.
fn listed_types<'a>(values: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut out: Option<Vec<String>> = None;
    for v in values {
        let list = out.get_or_insert_with(Vec::new);
        list.extend(
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        );
    }
    out
}

fn system_search(pairs: &[(String, String)]) -> Vec<Check> {
    let types = listed_types(
        pairs
            .iter()
            .filter(|(k, _)| k == "_type")
            .map(|(_, v)| v.as_str()),
    )
    .filter(|l| !l.is_empty())
    .unwrap_or_else(|| vec!["*".into()]);
    let mut out: Vec<Check> = types.into_iter().map(Check::Search).collect();
    out.extend(include_checks(pairs));
    out
}

fn type_search(t: &str, pairs: &[(String, String)]) -> Vec<Check> {
    let mut out = vec![Check::Search(t.to_owned())];
    out.extend(include_checks(pairs));
    out
}

/// What `method` on the path `segs` below the FHIR base needs. `query` holds the decoded
/// query pairs.
pub fn plan(method: &Method, segs: &[String], query: &[(String, String)]) -> Plan {
    let reading = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let seg = |i: usize| segs.get(i).map(String::as_str);
    match (segs.len(), seg(0), seg(1), seg(2)) {
        // The base: system search, or a batch/transaction that may do anything.
        (0, ..) if reading => Plan::Checks(system_search(query)),
        (0, ..) => Plan::Checks(all("cruds")),
        (1, Some("$export"), ..) if reading || post => Plan::Export,
        (1, Some("_search"), ..) if reading => Plan::Checks(system_search(query)),
        (1, Some("_search"), ..) if post => Plan::SearchForm(Vec::new()),
        (1, Some("_history"), ..) if reading => Plan::Checks(vec![Check::Read("*".into())]),
        (_, Some(op), ..) if op.starts_with('$') || op.starts_with('_') => {
            Plan::Checks(if reading {
                vec![Check::Read("*".into())]
            } else {
                all("cruds")
            })
        }
        (_, Some(t), ..) if is_type(t) => type_plan(method, t, segs, query),
        // Not FHIR REST: a server's own status and file paths (`bulkstatus/...`,
        // `bulkfiles/...`), which the export that made them already checked. Only
        // fetching and cancelling them passes on any token.
        (_, Some(s), ..)
            if s.starts_with(|c: char| c.is_ascii_lowercase())
                && (reading || *method == Method::DELETE) =>
        {
            Plan::Checks(Vec::new())
        }
        _ if reading => Plan::Checks(vec![Check::Read("*".into())]),
        _ => Plan::Checks(all("cruds")),
    }
}

fn type_plan(method: &Method, t: &str, segs: &[String], query: &[(String, String)]) -> Plan {
    let reading = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let seg = |i: usize| segs.get(i).map(String::as_str);
    let read = |t: &str| Plan::Checks(vec![Check::Read(t.to_owned())]);
    let perms = |t: &str, p: &'static str| Plan::Checks(vec![Check::Perms(t.to_owned(), p)]);
    match (segs.len(), seg(1), seg(2)) {
        (1, ..) if reading => Plan::Checks(type_search(t, query)),
        (1, ..) if post => perms(t, "c"),
        // Conditional update and delete.
        (1, ..) if *method == Method::PUT || *method == Method::PATCH => perms(t, "u"),
        (1, ..) if *method == Method::DELETE => perms(t, "d"),
        (2, Some("_search"), _) if reading => Plan::Checks(type_search(t, query)),
        (2, Some("_search"), _) if post => Plan::SearchForm(type_search(t, query)),
        (2, Some("_history"), _) if reading => Plan::Checks(vec![Check::Search(t.to_owned())]),
        (2, Some("$export"), _) if t == "Patient" && (reading || post) => Plan::Export,
        (3, _, Some("$export")) if t == "Group" && (reading || post) => Plan::Export,
        // Everything about a patient: any type may come back.
        (2 | 3, ..) if segs.last().is_some_and(|s| s == "$everything") && (reading || post) => {
            read("*")
        }
        (2, Some(op), _) | (3, _, Some(op)) if op.starts_with('$') => {
            if reading {
                read(t)
            } else {
                perms(t, "cruds")
            }
        }
        (2, Some(id), _) if !id.starts_with('_') => {
            if reading {
                read(t)
            } else if *method == Method::PUT || *method == Method::PATCH {
                perms(t, "u")
            } else if *method == Method::DELETE {
                perms(t, "d")
            } else {
                perms(t, "cruds")
            }
        }
        (3 | 4, _, Some("_history")) if reading => read(t),
        // A compartment search: `Patient/1/Observation`.
        (3, _, Some(c)) if reading && (is_type(c) || c == "*") => {
            Plan::Checks(type_search(c, query))
        }
        _ if reading => read("*"),
        _ => Plan::Checks(all("cruds")),
    }
}

/// The checks of a `$export` kick-off, from its query and (POST) Parameters body. A body
/// that cannot be read as Parameters may still name types the upstream understands, so it
/// needs read on `*`.
pub fn export_checks(query: &[(String, String)], body: Option<&[u8]>) -> Vec<Check> {
    let mut values: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "_type")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(bytes) = body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) {
        match parameters_types(bytes) {
            Some(found) => values.extend(found),
            None => return vec![Check::Read("*".into())],
        }
    }
    match listed_types(values.iter().map(String::as_str)) {
        Some(list) if !list.is_empty() => list.into_iter().map(Check::Read).collect(),
        _ => vec![Check::Read("*".into())],
    }
}

/// The `_type` values of a Parameters resource, whatever `value[x]` carries them.
fn parameters_types(bytes: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return None;
    }
    let mut out = Vec::new();
    for p in v
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if p.get("name").and_then(Value::as_str) != Some("_type") {
            continue;
        }
        let value = p.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v)
        });
        match value {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(other) => match other.get("code").and_then(Value::as_str) {
                Some(c) => out.push(c.to_owned()),
                None => return None,
            },
            None => return None,
        }
    }
    Some(out)
}

/// The checks of a POST `_search`: those known from the path and query, plus the form
/// body's `_type` (system level) and includes.
pub fn search_form_checks(
    mut known: Vec<Check>,
    query: &[(String, String)],
    body: &[u8],
) -> Vec<Check> {
    let mut all_pairs = query.to_vec();
    all_pairs.extend(pairs(body));
    if known.is_empty() {
        // System level: the types come from `_type`.
        return system_search(&all_pairs);
    }
    known.extend(include_checks(&pairs(body)));
    known
}

/// `Ok` if `grant` allows every check, else the 403 refusal naming the first that fails.
pub fn check(grant: &Grant, checks: &[Check]) -> Result<(), BearerError> {
    for c in checks {
        match c {
            Check::Read(t) => grant.require_read(t)?,
            Check::Search(t) => grant.require_search(t)?,
            Check::Perms(t, p) => {
                if !covers(&grant.scopes, t, p) {
                    return Err(BearerError::InsufficientScope {
                        needed: format!("system/{t}.{p} (granted: {})", grant.scopes),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether `scopes` include `system/{t}.{perms}` outright: granting that scope from them
/// gives it back unnarrowed exactly when they cover it.
fn covers(scopes: &Scopes, t: &str, perms: &str) -> bool {
    let Ok(want) = Scopes::parse(&format!("system/{t}.{perms}")) else {
        return false;
    };
    scopes.grant(&want).is_ok_and(|g| g == want)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        segments(p).unwrap()
    }

    fn plan_of(m: Method, path: &str, query: &str) -> Plan {
        plan(&m, &segs(path), &pairs(query.as_bytes()))
    }

    fn read(t: &str) -> Check {
        Check::Read(t.into())
    }

    fn search(t: &str) -> Check {
        Check::Search(t.into())
    }

    fn grant(scope: &str) -> Grant {
        Grant {
            client_id: "c".into(),
            scopes: Scopes::parse(scope).unwrap(),
            expires_at: u64::MAX,
        }
    }

    #[test]
    fn paths_that_could_escape_the_base_are_refused() {
        assert_eq!(segs(""), Vec::<String>::new());
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(segs("/Patient/a%20b/"), vec!["Patient", "a b"]);
        assert_eq!(segs("/Patient/a+b"), vec!["Patient", "a+b"]);
        assert_eq!(segs("/%24export"), vec!["$export"]);
        for bad in [
            "/../admin",
            "/Patient/%2e%2E/x",
            "/./Patient",
            "/Patient%2F..%2Fadmin",
            "/a\\b",
            "/Patient//1",
        ] {
            assert!(segments(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_and_searches_need_their_type() {
        assert_eq!(
            plan_of(Method::GET, "/Patient", "name=x"),
            Plan::Checks(vec![search("Patient")])
        );
        assert_eq!(
            plan_of(Method::GET, "/Patient/1", ""),
            Plan::Checks(vec![read("Patient")])
        );
        assert_eq!(
            plan_of(Method::HEAD, "/Patient/1/_history/2", ""),
            Plan::Checks(vec![read("Patient")])
        );
        assert_eq!(
            plan_of(Method::GET, "/Patient/1/Observation", ""),
            Plan::Checks(vec![search("Observation")])
        );
        assert_eq!(
            plan_of(
                Method::GET,
                "/Observation",
                "_include=Observation:subject:Patient&_revinclude:iterate=Provenance:target&_include=Observation:performer"
            ),
            Plan::Checks(vec![
                search("Observation"),
                read("Patient"),
                read("Provenance"),
                read("*")
            ])
        );
        assert_eq!(
            plan_of(Method::POST, "/Observation/_search", "a=1"),
            Plan::SearchForm(vec![search("Observation")])
        );
        assert_eq!(
            plan_of(Method::GET, "/Patient/1/$everything", ""),
            Plan::Checks(vec![read("*")])
        );
    }

    #[test]
    fn system_level_requests_need_their_types_or_everything() {
        assert_eq!(
            plan_of(Method::GET, "", "_type=Patient,Condition&_type=Observation"),
            Plan::Checks(vec![
                search("Patient"),
                search("Condition"),
                search("Observation")
            ])
        );
        assert_eq!(
            plan_of(Method::GET, "/", ""),
            Plan::Checks(vec![search("*")])
        );
        assert_eq!(
            plan_of(Method::GET, "/_history", ""),
            Plan::Checks(vec![read("*")])
        );
        assert_eq!(
            plan_of(Method::POST, "", ""),
            Plan::Checks(vec![Check::Perms("*".into(), "cruds")])
        );
        assert_eq!(
            plan_of(Method::POST, "/$purge", ""),
            Plan::Checks(vec![Check::Perms("*".into(), "cruds")])
        );
        assert_eq!(
            plan_of(Method::GET, "/$export-poll-status", "_jobId=1"),
            Plan::Checks(vec![read("*")])
        );
    }

    #[test]
    fn writes_need_write_permissions() {
        assert_eq!(
            plan_of(Method::POST, "/Patient", ""),
            Plan::Checks(vec![Check::Perms("Patient".into(), "c")])
        );
        assert_eq!(
            plan_of(Method::PUT, "/Patient/1", ""),
            Plan::Checks(vec![Check::Perms("Patient".into(), "u")])
        );
        assert_eq!(
            plan_of(Method::DELETE, "/Patient/1", ""),
            Plan::Checks(vec![Check::Perms("Patient".into(), "d")])
        );
        assert_eq!(
            plan_of(Method::POST, "/Patient/1/$meta-add", ""),
            Plan::Checks(vec![Check::Perms("Patient".into(), "cruds")])
        );
        let reader = grant("system/*.rs");
        assert!(check(&reader, &[Check::Perms("Patient".into(), "u")]).is_err());
        let writer = grant("system/Patient.cruds system/Observation.read");
        assert!(check(&writer, &[Check::Perms("Patient".into(), "u")]).is_ok());
        assert!(check(&writer, &[Check::Perms("Observation".into(), "u")]).is_err());
        assert!(check(&writer, &[Check::Perms("*".into(), "cruds")]).is_err());
        assert!(check(&grant("system/*.*"), &[Check::Perms("*".into(), "cruds")]).is_ok());
        assert!(
            check(
                &grant("system/Patient.u?x=1"),
                &[Check::Perms("Patient".into(), "u")]
            )
            .is_err()
        );
    }

    #[test]
    fn exports_need_read_on_every_type() {
        assert_eq!(plan_of(Method::GET, "/$export", ""), Plan::Export);
        assert_eq!(plan_of(Method::POST, "/Patient/$export", ""), Plan::Export);
        assert_eq!(plan_of(Method::GET, "/Group/g1/$export", ""), Plan::Export);
        assert!(Plan::Export.needs_body(&Method::POST));
        assert!(!Plan::Export.needs_body(&Method::GET));
        assert_eq!(export_checks(&[], None), vec![read("*")]);
        assert_eq!(
            export_checks(&pairs(b"_type=Patient,Encounter&_since=2020"), None),
            vec![read("Patient"), read("Encounter")]
        );
        let body = br#"{"resourceType":"Parameters","parameter":[
            {"name":"_type","valueString":"Condition"},
            {"name":"_since","valueInstant":"2020-01-01T00:00:00Z"},
            {"name":"_type","valueCode":{"code":"x"}},
            {"name":"_type","valueString":"Observation,Patient"}]}"#;
        assert_eq!(
            export_checks(&pairs(b"_type=Patient"), Some(body)),
            vec![
                read("Patient"),
                read("Condition"),
                read("x"),
                read("Observation"),
                read("Patient")
            ]
        );
        assert_eq!(
            export_checks(&[], Some(b"{\"resourceType\":\"Parameters\"}")),
            vec![read("*")]
        );
        assert_eq!(export_checks(&[], Some(b"<xml/>")), vec![read("*")]);
        assert_eq!(export_checks(&[], Some(b"  \n")), vec![read("*")]);

        let narrow = grant("system/Patient.rs system/Encounter.read");
        assert!(check(&narrow, &[read("Patient"), read("Encounter")]).is_ok());
        let e = check(&narrow, &[read("Patient"), read("Observation")]).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("Observation"), "{e}");
        assert!(check(&narrow, &[read("*")]).is_err());
        assert!(check(&grant("system/*.read"), &[read("*")]).is_ok());
    }

    #[test]
    fn status_and_files_need_any_token_but_only_to_fetch_or_cancel() {
        assert_eq!(
            plan_of(Method::GET, "/bulkstatus/abc", ""),
            Plan::Checks(Vec::new())
        );
        assert_eq!(
            plan_of(Method::DELETE, "/bulkstatus/abc", ""),
            Plan::Checks(Vec::new())
        );
        assert_eq!(
            plan_of(Method::GET, "/bulkfiles/abc/1.Patient.ndjson", ""),
            Plan::Checks(Vec::new())
        );
        assert_eq!(
            plan_of(Method::POST, "/bulkstatus/abc", ""),
            Plan::Checks(vec![Check::Perms("*".into(), "cruds")])
        );
    }

    #[test]
    fn search_forms_add_their_parameters() {
        assert_eq!(
            search_form_checks(
                Vec::new(),
                &[],
                b"_type=Patient&_include=Patient:general-practitioner:Practitioner"
            ),
            vec![search("Patient"), read("Practitioner")]
        );
        assert_eq!(search_form_checks(Vec::new(), &[], b""), vec![search("*")]);
        assert_eq!(
            search_form_checks(
                vec![search("Observation")],
                &[],
                b"_revinclude=Provenance:target"
            ),
            vec![search("Observation"), read("Provenance")]
        );
    }
}
