//! SMART Backend Services end to end, without HTTP: real RS384 and ES384 keys, assertions
//! signed by `stratus_smart::assertion`, checked by `stratus_smart::server`, and each way
//! a token request or a bearer token can be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use jwt_simple::prelude::{
    Claims, Duration as JwtDuration, ECDSAP384KeyPairLike, ES384KeyPair, HS256Key, MACLike,
    NoCustomClaims, RS384KeyPair, RSAKeyPairLike,
};
use serde_json::{Value, json};
use stratus_smart::assertion;
use stratus_smart::keys::{self, Alg, KeyError, SigningKey};
use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthConfig, AuthServer, BearerError, OAuthError, RegisterError};

const URL: &str = "http://127.0.0.1:9444/auth/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One RSA key for the whole file: pure-Rust RSA generation is the slow part.
fn rsa() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(Alg::Rs384, 2048).unwrap())
}

fn es() -> SigningKey {
    SigningKey::generate(Alg::Es384, 0).unwrap()
}

fn now() -> u64 {
    stratus_smart::server::now_unix()
}

/// A server with `app` (everything readable) and `narrow` (two types) for `key`.
fn server(key: &SigningKey) -> AuthServer {
    let s = AuthServer::new(AuthConfig::new(URL));
    // The whole generated file: private members must be stripped, not refused.
    s.register("app", &key.to_jwks(), Scopes::all_read())
        .unwrap();
    s.register(
        "narrow",
        &key.public_jwks(),
        Scopes::parse("system/Patient.rs system/Observation.rs").unwrap(),
    )
    .unwrap();
    s
}

fn form(assertion: &str, scope: &str) -> HashMap<String, String> {
    HashMap::from([
        ("grant_type".into(), "client_credentials".into()),
        ("client_assertion_type".into(), JWT_BEARER.into()),
        ("client_assertion".into(), assertion.into()),
        ("scope".into(), scope.into()),
    ])
}

fn sign(key: &SigningKey, iss: &str) -> String {
    assertion::sign(key, iss, URL, Duration::from_secs(300), None).unwrap()
}

/// The token request's error, asserting it is `invalid_client` (401) and that its
/// description contains `needle`.
fn refused_client(s: &AuthServer, f: &HashMap<String, String>, at: u64, needle: &str) {
    let e = s.token(f, at).unwrap_err();
    assert_eq!((e.status, e.error), (401, "invalid_client"), "{e:?}");
    assert!(e.description.contains(needle), "{needle:?} not in {e:?}");
}

/// An ES384 key pair of jwt-simple under the same key and kid, to build assertions the
/// library would never sign.
fn raw_es(key: &SigningKey) -> ES384KeyPair {
    ES384KeyPair::from_pem(&key.to_pkcs8_pem().unwrap())
        .unwrap()
        .with_key_id(key.kid())
}

fn claims(
    iss: &str,
    sub: &str,
    secs: u64,
    jti: &str,
) -> jwt_simple::prelude::JWTClaims<NoCustomClaims> {
    Claims::create(JwtDuration::from_secs(secs))
        .with_issuer(iss)
        .with_subject(sub)
        .with_audience(URL)
        .with_jwt_id(jti)
}

#[test]
fn round_trip_for_both_algorithms() {
    for key in [es(), rsa().clone()] {
        // Through the JWKS file a site would keep.
        let key = SigningKey::from_jwks(&key.to_jwks(), None).unwrap();
        let s = AuthServer::new(AuthConfig::new(URL));
        let public = keys::public_jwks(&key.to_jwks()).unwrap();
        assert_eq!(public["keys"].as_array().unwrap().len(), 1);
        s.register("app", &public, Scopes::all_read()).unwrap();
        assert_eq!(s.client_count(), 1);

        let t = s
            .token(&form(&sign(&key, "app"), "system/*.rs"), now())
            .unwrap();
        assert_eq!(t.token_type, "bearer");
        assert_eq!(t.expires_in, 300);
        assert_eq!(t.scope, "system/*.rs");
        assert_eq!(t.access_token.len(), 64);
        let body = serde_json::to_value(&t).unwrap();
        assert_eq!(body["token_type"], "bearer");

        let g = s
            .check_bearer(Some(&format!("Bearer {}", t.access_token)), now())
            .unwrap();
        assert_eq!(g.client_id, "app");
        assert!(g.scopes.can_read("Observation") && g.scopes.can_search("Patient"));
        assert!(g.expires_at >= now() + 299);
        g.require_read("Condition").unwrap();

        // The v1 spelling is granted and echoed as asked.
        let v1 = s
            .token(&form(&sign(&key, "app"), "system/*.read"), now())
            .unwrap();
        assert_eq!(v1.scope, "system/*.read");
    }
}

#[test]
fn scopes_are_granted_within_the_registration() {
    let key = es();
    let s = server(&key);
    let t = s
        .token(&form(&sign(&key, "narrow"), "system/*.rs"), now())
        .unwrap();
    assert_eq!(t.scope, "system/Patient.rs system/Observation.rs");
    let g = s
        .check_bearer(Some(&format!("Bearer {}", t.access_token)), now())
        .unwrap();
    let e = g.require_read("Condition").unwrap_err();
    assert!(matches!(e, BearerError::InsufficientScope { .. }));
    assert_eq!(e.status(), 403);
    assert!(e.to_string().contains("system/Condition.r"), "{e}");
    assert!(g.require_search("Patient").is_ok());

    let t = s
        .token(&form(&sign(&key, "narrow"), "system/Patient.read"), now())
        .unwrap();
    assert_eq!(t.scope, "system/Patient.read");

    for (scope, why) in [
        ("system/Condition.rs", "none of the requested scopes"),
        ("patient/*.rs launch", "none of the requested scopes"),
        ("system/*.rx", "malformed scope 'system/*.rx'"),
    ] {
        let e = s
            .token(&form(&sign(&key, "narrow"), scope), now())
            .unwrap_err();
        assert_eq!((e.status, e.error), (400, "invalid_scope"), "{e:?}");
        assert!(e.description.contains(why), "{e:?}");
    }
}

#[test]
fn form_problems() {
    let key = es();
    let s = server(&key);
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("grant_type", Some("password"), "unsupported_grant_type"),
        ("grant_type", None, "invalid_request"),
        (
            "client_assertion_type",
            Some("urn:other"),
            "invalid_request",
        ),
        ("client_assertion", None, "invalid_request"),
        ("scope", None, "invalid_request"),
    ];
    for (field, value, error) in cases {
        let mut f = form(&sign(&key, "app"), "system/*.rs");
        match value {
            Some(v) => f.insert(field.into(), v.into()),
            None => f.remove(field),
        };
        let e = s.token(&f, now()).unwrap_err();
        assert_eq!((e.status, e.error), (400, error), "{field}: {e:?}");
        assert!(e.description.contains(field), "{e:?}");
    }
    let e = OAuthError {
        status: 400,
        error: "invalid_request",
        description: "scope is missing".into(),
    };
    assert_eq!(
        e.to_json(),
        json!({"error": "invalid_request", "error_description": "scope is missing"})
    );
}

#[test]
fn replay_audience_and_expiry() {
    let key = es();
    let s = server(&key);
    let t0 = now();

    let a = sign(&key, "app");
    s.token(&form(&a, "system/*.rs"), t0).unwrap();
    refused_client(&s, &form(&a, "system/*.rs"), t0, "already used");
    // The same jti from another client is not a replay of this one's.
    let kp = raw_es(&key);
    for iss in ["app", "narrow"] {
        let a = kp.sign(claims(iss, iss, 60, "shared-jti")).unwrap();
        s.token(&form(&a, "system/*.rs"), t0).unwrap();
    }

    // A refusal for another reason does not burn the jti.
    let a = sign(&key, "app");
    let mut f = form(&a, "system/*.rs");
    f.insert("client_id".into(), "someone-else".into());
    refused_client(&s, &f, t0, "does not match the assertion's iss 'app'");
    s.token(&form(&a, "system/*.rs"), t0).unwrap();

    let other_aud = assertion::sign(
        &key,
        "app",
        "http://other/token",
        Duration::from_secs(60),
        None,
    )
    .unwrap();
    refused_client(
        &s,
        &form(&other_aud, "system/*.rs"),
        t0,
        &format!("assertion aud 'http://other/token' is not the token URL '{URL}'"),
    );

    // Expiry: exp = t0 + 300; the server forgives 60 s of clock skew.
    s.token(&form(&sign(&key, "app"), "system/*.rs"), t0 + 330)
        .unwrap();
    refused_client(
        &s,
        &form(&sign(&key, "app"), "system/*.rs"),
        t0 + 365,
        "has expired",
    );

    // An exp too far ahead, no exp, no jti, a future iat: built with jwt-simple directly.
    let far = kp.sign(claims("app", "app", 900, "far")).unwrap();
    refused_client(
        &s,
        &form(&far, "system/*.rs"),
        t0,
        "s ahead; at most 300 s allowed",
    );
    let mut c = claims("app", "app", 60, "no-exp");
    c.expires_at = None;
    refused_client(
        &s,
        &form(&kp.sign(c).unwrap(), "system/*.rs"),
        t0,
        "has no exp",
    );
    let mut c = claims("app", "app", 60, "x");
    c.jwt_id = None;
    refused_client(
        &s,
        &form(&kp.sign(c).unwrap(), "system/*.rs"),
        t0,
        "has no jti",
    );
    let future = kp.sign(claims("app", "app", 60, "future")).unwrap();
    refused_client(
        &s,
        &form(&future, "system/*.rs"),
        t0 - 200,
        "check the client's clock",
    );
}

#[test]
fn who_signed_and_with_what() {
    let key = es();
    let s = server(&key);
    let t0 = now();
    let kp = raw_es(&key);

    refused_client(
        &s,
        &form(&sign(&key, "stranger"), "system/*.rs"),
        t0,
        "client 'stranger' is not registered",
    );
    let sub = kp.sign(claims("app", "other", 60, "sub")).unwrap();
    refused_client(
        &s,
        &form(&sub, "system/*.rs"),
        t0,
        "sub 'other' differs from iss 'app'",
    );

    let other = es();
    refused_client(
        &s,
        &form(&sign(&other, "app"), "system/*.rs"),
        t0,
        &format!(
            "no key with kid '{}' is registered for client 'app'",
            other.kid()
        ),
    );

    // An RS384 signature under the kid the client registered for its EC key.
    let mut rs = rsa().clone();
    rs.set_kid(key.kid()).unwrap();
    refused_client(
        &s,
        &form(&sign(&rs, "app"), "system/*.rs"),
        t0,
        "is not an RSA key, which RS384 needs",
    );

    // Right kid and kty, wrong key: the signature does not verify.
    let mut impostor = es();
    impostor.set_kid(key.kid()).unwrap();
    refused_client(
        &s,
        &form(&sign(&impostor, "app"), "system/*.rs"),
        t0,
        "signature does not verify",
    );

    // A flipped bit in the signature.
    let mut t = sign(&key, "app");
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    refused_client(&s, &form(&t, "system/*.rs"), t0, "signature");

    // Algorithms other than RS384/ES384, a missing kid, jku, not a JWT at all.
    let hs = HS256Key::generate().with_key_id(key.kid());
    let hs = hs.authenticate(claims("app", "app", 60, "hs")).unwrap();
    refused_client(
        &s,
        &form(&hs, "system/*.rs"),
        t0,
        "alg HS256 is not accepted",
    );
    let no_kid = ES384KeyPair::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    let no_kid = no_kid.sign(claims("app", "app", 60, "nokid")).unwrap();
    refused_client(&s, &form(&no_kid, "system/*.rs"), t0, "no kid");
    let jku = assertion::sign(
        &key,
        "app",
        URL,
        Duration::from_secs(60),
        Some("https://app.example/jwks"),
    )
    .unwrap();
    refused_client(
        &s,
        &form(&jku, "system/*.rs"),
        t0,
        "jku not supported: register the JWKS by value",
    );
    refused_client(
        &s,
        &form("not.a.jwt", "system/*.rs"),
        t0,
        "not a signed JWT",
    );
}

#[test]
fn rsa_client_signs_through_the_server() {
    let key = rsa();
    let s = server(key);
    let t = s
        .token(&form(&sign(key, "narrow"), "system/Observation.rs"), now())
        .unwrap();
    assert_eq!(t.scope, "system/Observation.rs");
    // jwt-simple's own RS384 signer, as another client library would sign.
    let raw = RS384KeyPair::from_pem(&key.to_pkcs8_pem().unwrap())
        .unwrap()
        .with_key_id(key.kid());
    let a = raw.sign(claims("app", "app", 120, "raw-rs")).unwrap();
    s.token(&form(&a, "system/*.rs"), now()).unwrap();
}

#[test]
fn bearer_tokens() {
    let key = es();
    let mut cfg = AuthConfig::new(URL);
    cfg.valid_for = Some(Duration::from_secs(5));
    let s = AuthServer::new(cfg);
    s.register("app", &key.public_jwks(), Scopes::all_read())
        .unwrap();
    let t0 = now();
    let t = s
        .token(&form(&sign(&key, "app"), "system/*.rs"), t0)
        .unwrap();
    assert_eq!(
        t.expires_in, 300,
        "advertised as usual, dies early (fault injection)"
    );
    for h in [
        format!("Bearer {}", t.access_token),
        format!("bearer {}", t.access_token),
        format!("BEARER  {} ", t.access_token),
    ] {
        assert!(s.check_bearer(Some(&h), t0 + 4).is_ok(), "{h}");
    }
    let h = format!("Bearer {}", t.access_token);
    let expired = s.check_bearer(Some(&h), t0 + 6).unwrap_err();
    assert!(matches!(expired, BearerError::Expired));
    assert_eq!(expired.status(), 401);

    let missing = s.check_bearer(None, t0).unwrap_err();
    assert!(matches!(missing, BearerError::Missing));
    assert_eq!(missing.status(), 401);
    for bad in [
        "Basic dXNlcjpwdw==",
        "Bearer",
        "Bearer ",
        t.access_token.as_str(),
    ] {
        assert!(
            matches!(s.check_bearer(Some(bad), t0), Err(BearerError::Malformed)),
            "{bad}"
        );
    }
    assert!(matches!(
        s.check_bearer(Some("Bearer nope"), t0),
        Err(BearerError::Unknown)
    ));

    // Every message is one line.
    for e in [
        BearerError::Missing,
        BearerError::Malformed,
        BearerError::Unknown,
        BearerError::Expired,
        BearerError::InsufficientScope {
            needed: "system/Patient.r".into(),
        },
    ] {
        assert_eq!(e.to_string().lines().count(), 1);
    }

    s.revoke_all();
    assert!(matches!(
        s.check_bearer(Some(&h), t0 + 1),
        Err(BearerError::Unknown)
    ));
}

#[test]
fn registration() {
    let key = es();
    let s = AuthServer::new(AuthConfig::new(URL));
    let id = s.register_new(&key.to_jwks(), Scopes::all_read()).unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    s.token(&form(&sign(&key, &id), "system/*.rs"), now())
        .unwrap();

    // Replacing a registration swaps the keys: the old key stops working.
    let new = es();
    s.register(&id, &new.public_jwks(), Scopes::all_read())
        .unwrap();
    assert_eq!(s.client_count(), 1);
    assert!(
        s.token(&form(&sign(&key, &id), "system/*.rs"), now())
            .is_err()
    );
    s.token(&form(&sign(&new, &id), "system/*.rs"), now())
        .unwrap();

    assert!(matches!(
        s.register("x", &json!({"keys": []}), Scopes::all_read()),
        Err(RegisterError::NoUsableKey)
    ));
    // Only a P-256 key: nothing usable for RS384/ES384.
    let mut p256 = key.public_jwk();
    p256["crv"] = json!("P-256");
    p256.as_object_mut().unwrap().remove("alg");
    assert!(matches!(
        s.register("x", &json!({"keys": [p256]}), Scopes::all_read()),
        Err(RegisterError::NoUsableKey)
    ));
    // A key that claims to be P-384 but is not a valid one is refused at registration.
    let mut broken = key.public_jwk();
    broken["x"] = json!("AAAA");
    let e = s
        .register("x", &json!({"keys": [broken]}), Scopes::all_read())
        .unwrap_err();
    assert!(matches!(e, RegisterError::BadJwks(_)), "{e}");
    assert!(matches!(
        s.register("has space", &key.public_jwks(), Scopes::all_read()),
        Err(RegisterError::BadClientId(_))
    ));
    assert!(matches!(
        s.register("x", &json!("not a jwks"), Scopes::all_read()),
        Err(RegisterError::BadJwks(_))
    ));
}

/// PKCS#1 ("RSA PRIVATE KEY") PEM of a key, unwrapped from its PKCS#8 form.
fn pkcs1_pem(key: &SigningKey) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let info = p384::pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(info.private_key.as_bytes());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[test]
fn rsa_pem_forms_and_files() {
    let key = rsa();
    let pkcs8 = key.to_pkcs8_pem().unwrap();
    let pkcs1 = pkcs1_pem(key);
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let a = SigningKey::from_pem(&pkcs8).unwrap();
    let b = SigningKey::from_pem(&pkcs1).unwrap();
    assert_eq!(a.alg(), Alg::Rs384);
    assert_eq!(a.public_jwk(), b.public_jwk());
    assert_eq!(a.kid(), key.thumbprint());
    // Converted keys sign assertions the server accepts.
    let s = AuthServer::new(AuthConfig::new(URL));
    s.register("app", &b.public_jwks(), Scopes::all_read())
        .unwrap();
    // The kid is the thumbprint now, so the original kid is unknown to this server.
    s.token(&form(&sign(key, "app"), "system/*.rs"), now())
        .unwrap_err();
    s.token(&form(&sign(&b, "app"), "system/*.rs"), now())
        .unwrap();

    // Files: JWKS, PEM with a chosen kid, and things that are not keys.
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("client.jwks");
    std::fs::write(&jwks, key.to_jwks().to_string()).unwrap();
    assert_eq!(SigningKey::load(&jwks, None).unwrap().kid(), key.kid());
    let e = SigningKey::load(&jwks, Some("other"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("client.jwks: kid 'other' not found"), "{e}");
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, format!("Bag Attributes\n    localKeyID: 01\n{pkcs1}")).unwrap();
    assert_eq!(SigningKey::load(&pem, Some("k1")).unwrap().kid(), "k1");

    let cases: [(&str, &[u8], &str); 5] = [
        (
            "notes.txt",
            b"hello",
            "neither a PEM private key nor a JWKS",
        ),
        ("empty.json", b"", "the file is empty"),
        ("bad.json", b"{\"keys\": [", "not valid JSON"),
        ("key.der", &[0x30, 0x82, 0xff, 0xfe, 0x00], "a binary file"),
        ("public.jwks", b"{\"keys\": []}", "no private key"),
    ];
    for (name, content, why) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let e = SigningKey::load(&p, None).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(why), "{name}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let e = SigningKey::load(&dir.path().join("missing.jwks"), None).unwrap_err();
    assert!(matches!(e, KeyError::Io { .. }));
    assert!(e.to_string().contains("missing.jwks"), "{e}");
}

#[test]
fn assertion_shape() {
    let key = es();
    let a = assertion::sign(&key, "cid", URL, Duration::from_secs(120), None).unwrap();
    let part = |i: usize| -> Value {
        let p = a.split('.').nth(i).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    let (header, claims) = (part(0), part(1));
    assert_eq!(header["alg"], "ES384");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], key.kid());
    assert!(header.get("jku").is_none());
    assert_eq!(claims["iss"], "cid");
    assert_eq!(claims["sub"], "cid");
    assert_eq!(
        claims["aud"], URL,
        "aud is a JSON string, as servers expect"
    );
    assert!(claims.get("nbf").is_none());
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 120);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let b = assertion::sign(&key, "cid", URL, Duration::from_secs(120), None).unwrap();
    assert_ne!(a, b, "a fresh jti each time");

    let with_jku = assertion::sign(
        &key,
        "cid",
        URL,
        Duration::from_secs(60),
        Some("https://x/jwks"),
    )
    .unwrap();
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(with_jku.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(h["jku"], "https://x/jwks");

    for bad in [0, 301, 3600] {
        let e = assertion::sign(&key, "cid", URL, Duration::from_secs(bad), None).unwrap_err();
        assert!(matches!(e, KeyError::Lifetime(_)), "{bad}");
    }
    // A key that travelled through PEM signs the same way.
    let back = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(back.public_jwk()["x"], key.public_jwk()["x"]);
}
