//! The proxy over real HTTP on 127.0.0.1, in front of a real `stratus serve --open` over
//! the Synthea sample: discovery, registration, tokens from signed assertions, scope
//! refusals, a whole Bulk Data export through the proxy, gzip, restarts, a dead upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use stratus_proxy::{Proxy, ProxyConfig};
use stratus_server::{ServeConfig, Server};
use stratus_smart::keys::{Alg, SigningKey};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

fn upstream() -> Server {
    let mut c = ServeConfig::new(synthea());
    c.port = 0;
    c.open = true;
    stratus_server::start(c).expect("the upstream starts")
}

fn proxy_config(upstream: &str) -> ProxyConfig {
    let mut c = ProxyConfig::new(upstream);
    c.port = 0;
    c.upstream_timeout = Duration::from_secs(20);
    c
}

fn proxy(up: &Server) -> Proxy {
    stratus_proxy::start(proxy_config(&up.base_url)).expect("the proxy starts")
}

/// No automatic gzip: the tests look at the bytes and headers as they travel.
/// A request body read in parts with a pause before each part after the first.
struct SlowBody(Vec<Vec<u8>>);

impl Read for SlowBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Ok(0);
        }
        let part = self.0.remove(0);
        if self.0.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
        buf[..part.len()].copy_from_slice(&part);
        Ok(part.len())
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .no_gzip()
        .build()
        .unwrap()
}

fn json_of(r: Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
}

/// The single issue's code and diagnostics of an OperationOutcome answer.
fn outcome(r: Response) -> (String, String) {
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("fhir+json")
    );
    let v = json_of(r);
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    (
        v["issue"][0]["code"].as_str().unwrap().to_owned(),
        v["issue"][0]["diagnostics"].as_str().unwrap().to_owned(),
    )
}

fn register(c: &Client, p: &Proxy, key: &SigningKey, scope: Option<&str>) -> String {
    let mut body = json!({"jwks": key.public_jwks()});
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    let r = c.post(&p.register_url).json(&body).send().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v = json_of(r);
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    v["client_id"].as_str().unwrap().to_owned()
}

fn token_form(assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("scope", scope.into()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ),
        ("client_assertion", assertion.into()),
    ]
}

fn assertion(p: &Proxy, key: &SigningKey, client_id: &str) -> String {
    stratus_smart::assertion::sign(key, client_id, &p.token_url, Duration::from_secs(60), None)
        .unwrap()
}

fn token(c: &Client, p: &Proxy, key: &SigningKey, client_id: &str, scope: &str) -> String {
    let r = c
        .post(&p.token_url)
        .form(&token_form(&assertion(p, key, client_id), scope))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v = json_of(r);
    assert_eq!(v["token_type"], "bearer");
    v["access_token"].as_str().unwrap().to_owned()
}

fn es384() -> SigningKey {
    SigningKey::generate(Alg::Es384, 2048).unwrap()
}

#[test]
fn discovery_and_metadata_name_the_proxy() {
    let up = upstream();
    let p = proxy(&up);
    let c = client();
    assert_eq!(p.upstream, up.base_url);
    assert_eq!(p.base_url, format!("http://{}/fhir", p.addr));
    for url in [
        format!("{}/.well-known/smart-configuration", p.base_url),
        format!("http://{}/.well-known/smart-configuration", p.addr),
    ] {
        let v = json_of(c.get(&url).send().unwrap());
        assert_eq!(v["token_endpoint"], p.token_url);
        assert_eq!(v["registration_endpoint"], p.register_url);
        assert_eq!(v["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(
            v["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );
        assert_eq!(
            v["token_endpoint_auth_signing_alg_values_supported"],
            json!(["RS384", "ES384"])
        );
        assert!(
            v["capabilities"]
                .as_array()
                .unwrap()
                .contains(&json!("client-confidential-asymmetric"))
        );
        assert!(v["scopes_supported"].as_array().unwrap().len() >= 2);
    }

    // The CapabilityStatement comes from the upstream, with no token, and names the
    // proxy's endpoints.
    let r = c
        .get(format!("{}/metadata", p.base_url))
        .header("authorization", "Bearer whatever")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cs = json_of(r);
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["implementation"]["url"], p.base_url);
    let server = cs["rest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mode"] == "server")
        .unwrap();
    let uris = &server["security"]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        })
        .unwrap()["extension"];
    assert_eq!(
        uris,
        &json!([
            {"url": "token", "valueUri": p.token_url},
            {"url": "register", "valueUri": p.register_url}
        ])
    );
    assert!(!server["resource"].as_array().unwrap().is_empty());

    // Outside /fhir and /auth there is nothing.
    let r = c.get(format!("http://{}/other", p.addr)).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(outcome(r).0, "not-found");
    let r = c.get(&p.token_url).send().unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json_of(r)["error"], "invalid_request");
}

#[test]
fn tokens_are_checked_and_scopes_enforced() {
    let up = upstream();
    let p = proxy(&up);
    let c = client();
    let key = es384();
    let id = register(&c, &p, &key, Some("system/Patient.rs system/Condition.rs"));

    // A replayed assertion is refused with a clear OAuth error.
    let a = assertion(&p, &key, &id);
    let form = token_form(&a, "system/*.rs");
    let r = c.post(&p.token_url).form(&form).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let granted = json_of(r);
    assert_eq!(granted["scope"], "system/Patient.rs system/Condition.rs");
    let t = granted["access_token"].as_str().unwrap().to_owned();
    let r = c.post(&p.token_url).form(&form).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let e = json_of(r);
    assert_eq!(e["error"], "invalid_client");
    assert!(
        e["error_description"].as_str().unwrap().contains("jti"),
        "{e}"
    );
    // An assertion for another audience, and one signed with another key.
    let other = stratus_smart::assertion::sign(
        &key,
        &id,
        "http://elsewhere/token",
        Duration::from_secs(60),
        None,
    )
    .unwrap();
    let r = c
        .post(&p.token_url)
        .form(&token_form(&other, "system/*.rs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_of(r)["error_description"]
            .as_str()
            .unwrap()
            .contains("aud")
    );
    let r = c
        .post(&p.token_url)
        .form(&token_form(&assertion(&p, &es384(), &id), "system/*.rs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(r)["error"], "invalid_client");
    // A token request that is not a form.
    let r = c.post(&p.token_url).json(&json!({})).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r)["error"], "invalid_request");

    // No token, a bad one, a malformed header.
    let patients = format!("{}/Patient?_count=2", p.base_url);
    let r = c.get(&patients).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(outcome(r).0, "login");
    let r = c.get(&patients).bearer_auth("nope").send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(outcome(r).0, "security");
    let r = c
        .get(&patients)
        .header("authorization", "Basic abc")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Within the scopes: a search page whose links lead back through the proxy.
    let r = c.get(&patients).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = json_of(r);
    assert_eq!(page["resourceType"], "Bundle");
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.starts_with(&p.base_url), "{next}");
    let full_url = page["entry"][0]["fullUrl"].as_str().unwrap().to_owned();
    assert!(full_url.starts_with(&format!("{}/Patient/", p.base_url)));
    assert_eq!(
        c.get(&next).bearer_auth(&t).send().unwrap().status(),
        StatusCode::OK
    );
    // Gzip-coded JSON is rewritten too (sent back plain if the upstream compressed it).
    let r = c
        .get(&patients)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let gz = r
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let bytes = r.bytes().unwrap();
    let page: Value =
        serde_json::from_slice(&if gz { gunzip(&bytes) } else { bytes.to_vec() }).unwrap();
    assert!(
        page["link"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&p.base_url)
    );
    let r = c.get(&full_url).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r)["resourceType"], "Patient");

    // A POST search is judged by its form too.
    let search = format!("{}/Patient/_search", p.base_url);
    let r = c
        .post(&search)
        .bearer_auth(&t)
        .form(&[("_count", "1")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r)["resourceType"], "Bundle");
    let r = c
        .post(&search)
        .bearer_auth(&t)
        .form(&[("_count", "1"), ("_revinclude", "Observation:subject")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Outside them: 403 with an OperationOutcome, for reads, searches and exports.
    for url in [
        format!("{}/Observation?_count=1", p.base_url),
        format!("{}/Observation/x", p.base_url),
        format!("{}/Patient?_revinclude=Observation:subject", p.base_url),
        format!("{}?_type=Patient,Observation", p.base_url),
        format!("{}/$export", p.base_url),
        format!("{}/$export?_type=Patient,Observation", p.base_url),
        format!("{}/Patient/$export", p.base_url),
    ] {
        let r = c
            .get(&url)
            .bearer_auth(&t)
            .header("prefer", "respond-async")
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        let (code, text) = outcome(r);
        assert_eq!(code, "forbidden", "{url}");
        assert!(text.contains("granted"), "{text}");
    }
    // A POST kick-off is judged by the `_type` of its Parameters body.
    let params = |t: &str| json!({"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": t}]});
    let r = c
        .post(format!("{}/$export", p.base_url))
        .bearer_auth(&t)
        .header("prefer", "respond-async")
        .json(&params("Patient,Observation"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{}/$export", p.base_url))
        .bearer_auth(&t)
        .header("prefer", "respond-async")
        .json(&params("Patient"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().unwrap());
    let status = r.headers()["content-location"].to_str().unwrap().to_owned();
    assert!(status.starts_with(&p.base_url), "{status}");
    let r = c.delete(&status).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Writes need write scopes, which this client has not.
    let r = c
        .put(format!("{}/Patient/x", p.base_url))
        .bearer_auth(&t)
        .json(&json!({"resourceType": "Patient", "id": "x"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A path that would leave the FHIR base once resolved is refused outright.
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    write!(
        s,
        "GET /fhir/Patient/%2e%2e/%2E%2E/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"invalid\""), "{answer}");
}

#[test]
fn registration_takes_forms_defaults_and_jwks_uris() {
    let up = upstream();
    let p = proxy(&up);
    let c = client();

    // A form with the JWKS as JSON text and no scope: the default scope.
    let key = SigningKey::generate(Alg::Rs384, 2048).unwrap();
    let r = c
        .post(&p.register_url)
        .form(&[("jwks", key.public_jwks().to_string())])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json_of(r);
    assert_eq!(v["scope"], "system/*.rs");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let t = token(&c, &p, &key, &id, "system/*.read");
    let r = c
        .get(format!("{}/Observation?_count=1", p.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The configured scope is a ceiling: asking for write access gets read access only.
    let key3 = SigningKey::generate(Alg::Es384, 2048).unwrap();
    let r = c
        .post(&p.register_url)
        .json(&json!({"jwks": key3.public_jwks(), "scope": "system/*.cruds"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json_of(r)["scope"], "system/*.rs");

    // A jwks_uri is fetched once, at registration.
    let key2 = es384();
    let jwks_url = serve_once(key2.public_jwks().to_string());
    let r = c
        .post(&p.register_url)
        .json(&json!({"jwks_uri": jwks_url, "scope": "system/Patient.read"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().unwrap());
    let id2 = json_of(r)["client_id"].as_str().unwrap().to_owned();
    token(&c, &p, &key2, &id2, "system/Patient.read");

    // Refusals: a non-http jwks_uri, nothing to register, no usable key, a bad scope.
    for (body, why) in [
        (json!({"jwks_uri": "file:///etc/passwd"}), "http"),
        (json!({"scope": "system/*.rs"}), "jwks"),
        (json!({"jwks": {"keys": []}}), "key"),
        (
            json!({"jwks": key2.public_jwks(), "scope": "system/Patient"}),
            "scope",
        ),
    ] {
        let r = c.post(&p.register_url).json(&body).send().unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e = json_of(r);
        assert_eq!(e["error"], "invalid_client_metadata", "{e}");
        assert!(
            e["error_description"].as_str().unwrap().contains(why),
            "{e}"
        );
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = c
        .post(&p.register_url)
        .json(&json!({"jwks_uri": format!("http://{closed}/jwks.json")}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Registration can be switched off.
    let mut cfg = proxy_config(&up.base_url);
    cfg.registration = false;
    let closed_reg = stratus_proxy::start(cfg).unwrap();
    let r = c
        .post(&closed_reg.register_url)
        .json(&json!({"jwks": key2.public_jwks()}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let conf = json_of(
        c.get(format!(
            "{}/.well-known/smart-configuration",
            closed_reg.base_url
        ))
        .send()
        .unwrap(),
    );
    assert!(conf.get("registration_endpoint").is_none());
}

/// Serves `body` as JSON to the first request on a fresh port; returns its URL.
fn serve_once(body: String) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    format!("http://{addr}/jwks.json")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn a_bulk_export_runs_through_the_proxy() {
    let up = upstream();
    let p = proxy(&up);
    let c = client();
    let key = es384();
    let id = register(&c, &p, &key, Some("system/Patient.rs system/Condition.rs"));

    // stratus-http does the whole SMART dance by itself from the discovery document.
    let smart = stratus_http::Client::new(
        &p.base_url,
        stratus_http::auth::Auth::Smart(Box::new(stratus_http::auth::SmartClient::new(
            id.clone(),
            key.clone(),
            Some("system/Patient.rs system/Condition.rs".into()),
            None,
        ))),
        stratus_http::client::HttpConfig::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let authorization = rt.block_on(smart.authorization()).unwrap().unwrap();
    let t = authorization.strip_prefix("Bearer ").unwrap().to_owned();

    // Kick-off: the status URL is the proxy's.
    let r = c
        .get(format!("{}/$export?_type=Patient,Condition", p.base_url))
        .bearer_auth(&t)
        .header("accept", "application/fhir+json")
        .header("prefer", "respond-async")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().unwrap());
    let status = r.headers()["content-location"].to_str().unwrap().to_owned();
    assert!(status.starts_with(&format!("{}/", p.base_url)), "{status}");
    let kickoff = json_of(r);
    assert!(
        !kickoff.to_string().contains(&up.base_url),
        "the kick-off answer still names the upstream: {kickoff}"
    );

    // Polling needs a token, then any valid one will do.
    let r = c.get(&status).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let manifest = loop {
        let r = c.get(&status).bearer_auth(&t).send().unwrap();
        match r.status() {
            StatusCode::ACCEPTED => std::thread::sleep(Duration::from_millis(50)),
            StatusCode::OK => break json_of(r),
            s => panic!("{s}: {}", r.text().unwrap()),
        }
    };
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(
        manifest["request"],
        format!("{}/$export?_type=Patient,Condition", p.base_url)
    );
    let outputs = manifest["output"].as_array().unwrap();
    assert!(outputs.len() >= 2, "{manifest}");
    for item in outputs
        .iter()
        .chain(manifest["error"].as_array().unwrap())
        .chain(manifest["deleted"].as_array().unwrap())
    {
        let url = item["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/", p.base_url)), "{url}");
    }
    assert!(!manifest.to_string().contains(&up.base_url), "{manifest}");

    // A file through the proxy is the file from the upstream, plain and gzip.
    let patients = outputs.iter().find(|o| o["type"] == "Patient").unwrap();
    let file = patients["url"].as_str().unwrap().to_owned();
    let direct = file.replace(&p.base_url, &up.base_url);
    let plain = c.get(&direct).send().unwrap().bytes().unwrap();
    let r = c.get(&file).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
    let through = r.bytes().unwrap();
    assert_eq!(through, plain);
    let lines = plain
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines as u64, patients["count"].as_u64().unwrap());

    let direct_gz = c
        .get(&direct)
        .header("accept-encoding", "gzip")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let r = c
        .get(&file)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().unwrap();
    assert_eq!(gz, direct_gz);
    assert_eq!(gunzip(&gz), plain);

    // A broken download resumes with a Range request, passed through.
    let r = c
        .get(&file)
        .bearer_auth(&t)
        .header("accept-encoding", "gzip")
        .header("range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().unwrap(), direct_gz.slice(10..));

    // Without a token there is no file.
    let r = c.get(&file).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(outcome(r).0, "login");

    // Another client's narrower token still fetches the handed-out file: the export
    // was checked when it started.
    let key2 = es384();
    let id2 = register(&c, &p, &key2, Some("system/Condition.rs"));
    let t2 = token(&c, &p, &key2, &id2, "system/Condition.rs");
    let r = c.get(&file).bearer_auth(&t2).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // DELETE of the status URL through the proxy, after which the job is gone.
    let r = c.delete(&status).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.get(&status).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (code, text) = outcome(r);
    assert_eq!(code, "not-found");
    assert!(!text.contains(&up.base_url), "{text}");
}

#[test]
fn optional_auth_lets_tokenless_requests_through() {
    let up = upstream();
    let mut cfg = proxy_config(&up.base_url);
    cfg.optional_auth = true;
    let p = stratus_proxy::start(cfg).unwrap();
    let c = client();
    let r = c
        .get(format!("{}/Observation?_count=1", p.base_url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = json_of(r);
    assert!(
        page["link"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&p.base_url)
    );
    let r = c
        .get(format!("{}/Observation?_count=1", p.base_url))
        .bearer_auth("forged")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A body streams to the upstream as it comes; its answer comes back as it was.
    let direct = c
        .post(format!("{}/Patient", up.base_url))
        .json(&json!({"resourceType": "Patient"}))
        .send()
        .unwrap()
        .status();
    // Its second half comes late: the upstream refuses before it is sent, and the client
    // must still get that answer, not a connection closed under its body.
    let body = reqwest::blocking::Body::new(SlowBody(vec![
        br#"{"resourceType":"#.to_vec(),
        br#""Patient"}"#.to_vec(),
    ]));
    let r = c
        .post(format!("{}/Patient", p.base_url))
        .header("content-type", "application/fhir+json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), direct);
    assert!(r.status().is_client_error());

    // A JSON answer over the rewrite cap streams through whole, unrewritten.
    let mut cfg = proxy_config(&up.base_url);
    cfg.optional_auth = true;
    cfg.max_rewrite_bytes = 64;
    let small = stratus_proxy::start(cfg).unwrap();
    let direct = json_of(
        c.get(format!("{}/Patient?_count=3", up.base_url))
            .send()
            .unwrap(),
    );
    let through = json_of(
        c.get(format!("{}/Patient?_count=3", small.base_url))
            .send()
            .unwrap(),
    );
    assert_eq!(through["link"], direct["link"]);
    assert_eq!(through["entry"], direct["entry"]);
}

#[test]
fn registrations_survive_a_restart() {
    let up = upstream();
    let state = tempfile::tempdir().unwrap();
    let c = client();
    let key = es384();
    let mut cfg = proxy_config(&up.base_url);
    cfg.state_dir = Some(state.path().join("proxy-state"));

    let first = stratus_proxy::start(cfg.clone()).unwrap();
    assert_eq!(first.restored_clients, 0);
    let id = register(&c, &first, &key, Some("system/Patient.rs"));
    first.stop().unwrap();
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("proxy-state/clients.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved[&id]["scope"], "system/Patient.rs");

    let second = stratus_proxy::start(cfg).unwrap();
    assert_eq!(second.restored_clients, 1);
    let t = token(&c, &second, &key, &id, "system/Patient.rs");
    let r = c
        .get(format!("{}/Patient?_count=1", second.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A second registration is added to the file, not written over the first.
    register(&c, &second, &es384(), None);
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("proxy-state/clients.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.as_object().unwrap().len(), 2);

    // A registry that cannot be read stops the start with a message naming the file.
    std::fs::write(state.path().join("proxy-state/clients.json"), "[").unwrap();
    let mut cfg = proxy_config(&up.base_url);
    cfg.state_dir = Some(state.path().join("proxy-state"));
    let e = stratus_proxy::start(cfg).err().unwrap();
    assert!(e.to_string().contains("clients.json"), "{e}");
}

#[test]
fn a_dead_upstream_is_a_502_outcome() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = stratus_proxy::start(proxy_config(&format!("http://{closed}/fhir"))).unwrap();
    let c = client();
    let key = es384();
    let id = register(&c, &p, &key, None);
    let t = token(&c, &p, &key, &id, "system/*.rs");
    let r = c
        .get(format!("{}/Patient", p.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let (code, text) = outcome(r);
    assert_eq!(code, "transient");
    assert!(text.contains(&closed.to_string()), "{text}");
    let r = c.get(format!("{}/metadata", p.base_url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
}

#[test]
fn bad_configurations_are_refused() {
    for upstream in ["ftp://x/fhir", "not a url", "http://x/fhir?q=1"] {
        let e = stratus_proxy::start(proxy_config(upstream)).err().unwrap();
        assert!(matches!(e, stratus_proxy::ProxyError::Config(_)), "{e}");
    }
    let mut cfg = proxy_config("http://127.0.0.1:1/fhir");
    cfg.default_scope = "system/Patient".into();
    assert!(stratus_proxy::start(cfg).is_err());
    let mut cfg = proxy_config("http://127.0.0.1:1/fhir");
    cfg.public_url = Some("https://proxy.example/".into());
    let p = stratus_proxy::start(cfg).unwrap();
    assert_eq!(p.base_url, "https://proxy.example/fhir");
    assert_eq!(p.token_url, "https://proxy.example/auth/token");
    assert_eq!(p.register_url, "https://proxy.example/auth/register");
}
