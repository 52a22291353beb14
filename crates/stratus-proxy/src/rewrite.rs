//! URL rewriting: every URL the upstream hands out under its own base must point at the
//! proxy instead, or a client would follow it straight to the open server (no token, and
//! probably not reachable from where the client runs).
//!
//! Only the places that carry links are rewritten: headers `Location` and
//! `Content-Location`, the export manifest's `request` and file URLs, Bundle links and
//! `fullUrl`s, `implementation.url` of the CapabilityStatement, and the upstream base
//! inside OperationOutcome diagnostics. Resource contents are data and stay as they are
//! (NDJSON files are never touched, so a rewritten Bundle page agrees with them).

use serde_json::{Map, Value, json};

const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// Replaces upstream base prefixes with the proxy base.
#[derive(Debug, Clone)]
pub struct Rewriter {
    /// The upstream base first, then its aliases; no trailing slash.
    from: Vec<String>,
    /// The proxy's FHIR base; no trailing slash.
    to: String,
}

/// What rewriting a JSON answer did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub changed: bool,
    /// Paths (with query) below the proxy base of the file and partial-manifest URLs a
    /// manifest handed out: downloads the client is entitled to with any valid token.
    pub handed_out: Vec<String>,
}

/// `rest` starts with `base` and continues at a path boundary, so that `http://h/fhir`
/// does not claim `http://h/fhirx`.
fn strip_base<'a>(url: &'a str, base: &str) -> Option<&'a str> {
    let rest = url.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with(['/', '?', '#'])).then_some(rest)
}

impl Rewriter {
    pub fn new(from: Vec<String>, to: impl Into<String>) -> Self {
        Rewriter {
            from: from
                .into_iter()
                .map(|f| f.trim_end_matches('/').to_owned())
                .filter(|f| !f.is_empty())
                .collect(),
            to: to.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The proxy's FHIR base.
    pub fn proxy_base(&self) -> &str {
        &self.to
    }

    /// `url` moved under the proxy base, or `None` if it is not under an upstream base.
    pub fn url(&self, url: &str) -> Option<String> {
        self.from
            .iter()
            .find_map(|base| strip_base(url, base))
            .map(|rest| format!("{}{rest}", self.to))
    }

    /// The part of a proxy URL after the proxy base (`/bulkfiles/1/a.ndjson?x`).
    pub fn below_proxy<'a>(&self, url: &'a str) -> Option<&'a str> {
        strip_base(url, &self.to)
    }

    /// Every upstream base inside free text replaced, for messages that tell the client
    /// where to go next.
    fn text(&self, text: &str) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        'scan: while !rest.is_empty() {
            for base in &self.from {
                if let Some(after) = strip_base(rest, base) {
                    out.push_str(&self.to);
                    rest = after;
                    changed = true;
                    continue 'scan;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        changed.then_some(out)
    }

    fn field(&self, obj: &mut Map<String, Value>, name: &str) -> Option<String> {
        let Some(Value::String(s)) = obj.get_mut(name) else {
            return None;
        };
        let new = self.url(s)?;
        *s = new.clone();
        Some(new)
    }

    /// Rewrites the URLs of a Bulk Data manifest, a Bundle, an OperationOutcome or a
    /// CapabilityStatement; anything else is left alone.
    pub fn json(&self, v: &mut Value) -> Rewritten {
        let mut out = Rewritten::default();
        let Some(obj) = v.as_object_mut() else {
            return out;
        };
        match obj.get("resourceType").and_then(Value::as_str) {
            Some("Bundle") => self.bundle(obj, &mut out),
            Some("OperationOutcome") => self.outcome(obj, &mut out),
            Some("CapabilityStatement") => {
                if let Some(Value::Object(imp)) = obj.get_mut("implementation") {
                    out.changed |= self.field(imp, "url").is_some();
                }
            }
            Some(_) => {}
            None if is_manifest(obj) => self.manifest(obj, &mut out),
            None => {}
        }
        out
    }

    fn manifest(&self, obj: &mut Map<String, Value>, out: &mut Rewritten) {
        out.changed |= self.field(obj, "request").is_some();
        let mut files = 0usize;
        let mut proxied = 0usize;
        for list in ["output", "error", "deleted"] {
            let Some(Value::Array(items)) = obj.get_mut(list) else {
                continue;
            };
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                if item.get("url").is_none() {
                    continue;
                }
                files += 1;
                if let Some(new) = self.field(item, "url") {
                    proxied += 1;
                    out.changed = true;
                    if let Some(p) = self.below_proxy(&new) {
                        out.handed_out.push(p.to_owned());
                    }
                }
            }
        }
        self.links(obj, out);
        // Files that stay elsewhere (pre-signed storage URLs) must not be sent the
        // proxy's token, so the flag is only forced when downloads come through here.
        if files == 0 || proxied > 0 {
            if obj.get("requiresAccessToken") != Some(&Value::Bool(true)) {
                out.changed = true;
            }
            obj.insert("requiresAccessToken".into(), Value::Bool(true));
        }
    }

    fn links(&self, obj: &mut Map<String, Value>, out: &mut Rewritten) {
        let Some(Value::Array(links)) = obj.get_mut("link") else {
            return;
        };
        for link in links.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(new) = self.field(link, "url") {
                out.changed = true;
                if let Some(p) = self.below_proxy(&new) {
                    out.handed_out.push(p.to_owned());
                }
            }
        }
    }

    fn bundle(&self, obj: &mut Map<String, Value>, out: &mut Rewritten) {
        if let Some(Value::Array(links)) = obj.get_mut("link") {
            for link in links.iter_mut().filter_map(Value::as_object_mut) {
                out.changed |= self.field(link, "url").is_some();
            }
        }
        let Some(Value::Array(entries)) = obj.get_mut("entry") else {
            return;
        };
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            out.changed |= self.field(entry, "fullUrl").is_some();
            if let Some(Value::Object(resp)) = entry.get_mut("response") {
                out.changed |= self.field(resp, "location").is_some();
            }
        }
    }

    fn outcome(&self, obj: &mut Map<String, Value>, out: &mut Rewritten) {
        let Some(Value::Array(issues)) = obj.get_mut("issue") else {
            return;
        };
        for issue in issues.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(Value::String(d)) = issue.get_mut("diagnostics")
                && let Some(new) = self.text(d)
            {
                *d = new;
                out.changed = true;
            }
        }
    }
}

/// A Bulk Data manifest has no `resourceType`, and has a `transactionTime` or `output`.
fn is_manifest(obj: &Map<String, Value>) -> bool {
    obj.get("output").is_some_and(Value::is_array) || obj.get("transactionTime").is_some()
}

/// Puts the proxy's SMART endpoints into a CapabilityStatement's
/// `rest[mode=server].security`, replacing whatever the open upstream said about its
/// (absent) security. Returns false if `v` is not a CapabilityStatement.
pub fn add_oauth_uris(v: &mut Value, token_url: &str, register_url: Option<&str>) -> bool {
    let Some(obj) = v.as_object_mut() else {
        return false;
    };
    if obj.get("resourceType").and_then(Value::as_str) != Some("CapabilityStatement") {
        return false;
    }
    let rest = obj
        .entry("rest")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(rest) = rest.as_array_mut() else {
        return false;
    };
    let at = rest
        .iter()
        .position(|r| r.get("mode").and_then(Value::as_str) == Some("server"));
    let server = match at {
        Some(i) => &mut rest[i],
        None => {
            rest.push(json!({"mode": "server"}));
            let last = rest.len() - 1;
            &mut rest[last]
        }
    };
    let Some(server) = server.as_object_mut() else {
        return false;
    };
    let security = server
        .entry("security")
        .or_insert_with(|| Value::Object(Map::new()));
    if !security.is_object() {
        *security = Value::Object(Map::new());
    }
    let Some(security) = security.as_object_mut() else {
        return false;
    };
    let mut uris = vec![json!({"url": "token", "valueUri": token_url})];
    if let Some(r) = register_url {
        uris.push(json!({"url": "register", "valueUri": r}));
    }
    let mut extensions: Vec<Value> = match security.remove("extension") {
        Some(Value::Array(list)) => list
            .into_iter()
            .filter(|e| e.get("url").and_then(Value::as_str) != Some(OAUTH_URIS))
            .collect(),
        _ => Vec::new(),
    };
    extensions.push(json!({"url": OAUTH_URIS, "extension": uris}));
    security.insert("extension".into(), Value::Array(extensions));
    security.insert(
        "service".into(),
        json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"
        }]}]),
    );
    security.insert(
        "description".into(),
        json!("SMART Backend Services (client_credentials with private_key_jwt) by stratus proxy"),
    );
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rw() -> Rewriter {
        Rewriter::new(
            vec![
                "http://up:9444/fhir/".into(),
                "http://localhost:9444/fhir".into(),
            ],
            "https://proxy.example/fhir",
        )
    }

    #[test]
    fn urls_move_only_at_a_path_boundary() {
        let r = rw();
        assert_eq!(
            r.url("http://up:9444/fhir/bulkstatus/1").as_deref(),
            Some("https://proxy.example/fhir/bulkstatus/1")
        );
        assert_eq!(
            r.url("http://up:9444/fhir").as_deref(),
            Some("https://proxy.example/fhir")
        );
        assert_eq!(
            r.url("http://up:9444/fhir?_type=Patient").as_deref(),
            Some("https://proxy.example/fhir?_type=Patient")
        );
        assert_eq!(
            r.url("http://localhost:9444/fhir/Patient/1").as_deref(),
            Some("https://proxy.example/fhir/Patient/1")
        );
        assert_eq!(r.url("http://up:9444/fhirx/a"), None);
        assert_eq!(r.url("http://up:9444/other"), None);
        assert_eq!(r.url("https://bucket.s3/x.ndjson"), None);
        assert_eq!(
            r.below_proxy("https://proxy.example/fhir/bulkfiles/1/a.ndjson"),
            Some("/bulkfiles/1/a.ndjson")
        );
        assert_eq!(r.below_proxy("https://proxy.example/fhirz"), None);
    }

    #[test]
    fn manifests_point_at_the_proxy_and_require_the_token() {
        let mut m = json!({
            "transactionTime": "2024-01-01T00:00:00Z",
            "request": "http://up:9444/fhir/$export?_type=Patient",
            "requiresAccessToken": false,
            "output": [
                {"type": "Patient", "url": "http://up:9444/fhir/bulkfiles/j/1.Patient.ndjson"},
                {"type": "Patient", "url": "http://localhost:9444/fhir/bulkfiles/j/2.Patient.ndjson", "count": 3}
            ],
            "error": [{"type": "OperationOutcome", "url": "http://up:9444/fhir/bulkfiles/j/err.ndjson"}],
            "deleted": [{"type": "Bundle", "url": "http://up:9444/fhir/bulkfiles/j/del.ndjson"}],
            "link": [{"relation": "next", "url": "http://up:9444/fhir/bulkstatus/j?page=2"}]
        });
        let out = rw().json(&mut m);
        assert!(out.changed);
        assert_eq!(
            m["request"],
            "https://proxy.example/fhir/$export?_type=Patient"
        );
        assert_eq!(m["requiresAccessToken"], true);
        assert_eq!(
            m["output"][1]["url"],
            "https://proxy.example/fhir/bulkfiles/j/2.Patient.ndjson"
        );
        assert_eq!(m["output"][1]["count"], 3);
        assert_eq!(
            m["error"][0]["url"],
            "https://proxy.example/fhir/bulkfiles/j/err.ndjson"
        );
        assert_eq!(
            m["deleted"][0]["url"],
            "https://proxy.example/fhir/bulkfiles/j/del.ndjson"
        );
        assert_eq!(
            m["link"][0]["url"],
            "https://proxy.example/fhir/bulkstatus/j?page=2"
        );
        assert_eq!(
            out.handed_out,
            vec![
                "/bulkfiles/j/1.Patient.ndjson",
                "/bulkfiles/j/2.Patient.ndjson",
                "/bulkfiles/j/err.ndjson",
                "/bulkfiles/j/del.ndjson",
                "/bulkstatus/j?page=2"
            ]
        );
    }

    #[test]
    fn files_stored_elsewhere_keep_their_flag() {
        let mut m = json!({
            "transactionTime": "2024-01-01T00:00:00Z",
            "request": "http://up:9444/fhir/$export",
            "requiresAccessToken": false,
            "output": [{"type": "Patient", "url": "https://bucket.s3/p.ndjson?sig=1"}],
            "error": []
        });
        let out = rw().json(&mut m);
        assert!(out.changed);
        assert_eq!(m["requiresAccessToken"], false);
        assert_eq!(m["output"][0]["url"], "https://bucket.s3/p.ndjson?sig=1");
        assert!(out.handed_out.is_empty());

        let mut empty = json!({"transactionTime": "t", "request": "x", "output": []});
        assert!(rw().json(&mut empty).changed);
        assert_eq!(empty["requiresAccessToken"], true);
    }

    #[test]
    fn bundles_rewrite_links_and_full_urls_only() {
        let mut b = json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [
                {"relation": "self", "url": "http://up:9444/fhir/Patient?_count=2"},
                {"relation": "next", "url": "http://up:9444/fhir/Patient?_count=2&_offset=2"}
            ],
            "entry": [{
                "fullUrl": "http://up:9444/fhir/Patient/a",
                "resource": {"resourceType": "Patient", "id": "a",
                    "photo": [{"url": "http://up:9444/fhir/Binary/b"}]},
                "response": {"location": "http://up:9444/fhir/Patient/a/_history/1"}
            }]
        });
        let out = rw().json(&mut b);
        assert!(out.changed);
        assert!(out.handed_out.is_empty());
        assert_eq!(
            b["link"][1]["url"],
            "https://proxy.example/fhir/Patient?_count=2&_offset=2"
        );
        assert_eq!(
            b["entry"][0]["fullUrl"],
            "https://proxy.example/fhir/Patient/a"
        );
        assert_eq!(
            b["entry"][0]["response"]["location"],
            "https://proxy.example/fhir/Patient/a/_history/1"
        );
        // Resource contents are data.
        assert_eq!(
            b["entry"][0]["resource"]["photo"][0]["url"],
            "http://up:9444/fhir/Binary/b"
        );
    }

    #[test]
    fn outcome_messages_name_the_proxy() {
        let mut oo = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational",
             "diagnostics": "export started; poll http://up:9444/fhir/bulkstatus/1 (http://up:9444/fhirx stays)"}
        ]});
        assert!(rw().json(&mut oo).changed);
        assert_eq!(
            oo["issue"][0]["diagnostics"],
            "export started; poll https://proxy.example/fhir/bulkstatus/1 (http://up:9444/fhirx stays)"
        );
        let mut other = json!({"resourceType": "Patient", "id": "x"});
        assert!(!rw().json(&mut other).changed);
        let mut not_object = json!([1, 2]);
        assert!(!rw().json(&mut not_object).changed);
        let mut plain = json!({"some": "thing"});
        assert!(!rw().json(&mut plain).changed);
    }

    #[test]
    fn capability_statements_get_the_proxy_security() {
        let mut cs = json!({
            "resourceType": "CapabilityStatement",
            "implementation": {"description": "stratus serve", "url": "http://up:9444/fhir"},
            "rest": [{"mode": "client"}, {"mode": "server", "security": {"cors": false,
                "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": "http://old"}]},
                              {"url": "http://other"}]}}]
        });
        assert!(rw().json(&mut cs).changed);
        assert_eq!(cs["implementation"]["url"], "https://proxy.example/fhir");
        assert!(add_oauth_uris(
            &mut cs,
            "https://proxy.example/auth/token",
            Some("https://proxy.example/auth/register")
        ));
        let sec = &cs["rest"][1]["security"];
        assert_eq!(sec["cors"], false);
        assert_eq!(sec["extension"][0]["url"], "http://other");
        assert_eq!(sec["extension"][1]["url"], OAUTH_URIS);
        assert_eq!(
            sec["extension"][1]["extension"],
            json!([
                {"url": "token", "valueUri": "https://proxy.example/auth/token"},
                {"url": "register", "valueUri": "https://proxy.example/auth/register"}
            ])
        );
        assert_eq!(sec["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        assert!(cs["rest"][0].get("security").is_none());

        let mut bare = json!({"resourceType": "CapabilityStatement"});
        assert!(add_oauth_uris(&mut bare, "t", None));
        assert_eq!(bare["rest"][0]["mode"], "server");
        assert_eq!(
            bare["rest"][0]["security"]["extension"][0]["extension"],
            json!([{"url": "token", "valueUri": "t"}])
        );
        assert!(!add_oauth_uris(
            &mut json!({"resourceType": "Patient"}),
            "t",
            None
        ));
    }
}
