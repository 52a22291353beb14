//! `stratus keys` as a site engineer runs it: key files made, shown and converted by the
//! real binary, PEM files from openssl (when it is installed), and the one-line errors for
//! files that are not keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

mod common;

use common::{Run, p, run};
use serde_json::Value;
use stratus_smart::keys::SigningKey;
use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthConfig, AuthServer, now_unix};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A failed run: exit code 1 and one line on stderr that contains every `needle`.
fn assert_one_line_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "{n:?} not in {}", r.stderr);
    }
}

/// Signs an assertion with the key in `private` and asks an in-process token endpoint
/// that registered `public`: a key file and its public part really belong together.
fn authenticates(private: &Path, public: &Value) {
    let url = "http://127.0.0.1:1/auth/token";
    let server = AuthServer::new(AuthConfig::new(url));
    server.register("site", public, Scopes::all_read()).unwrap();
    let key = SigningKey::load(private, None).unwrap();
    let a =
        stratus_smart::assertion::sign(&key, "site", url, Duration::from_secs(300), None).unwrap();
    let form: HashMap<String, String> = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", a.as_str()),
        ("scope", "system/*.rs"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let t = server.token(&form, now_unix()).unwrap();
    assert_eq!(t.scope, "system/*.rs");
}

#[test]
fn generate_writes_a_private_jwks_for_you_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("client.jwks");
    let r = run(&["keys", "generate", "--alg", "ES384", "--out", p(&file)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let v = json(&std::fs::read_to_string(&file).unwrap());
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], keys[1]["kid"]);
    let kid = keys[0]["kid"].as_str().unwrap();
    assert_eq!(kid.len(), 32);
    assert!(keys[0].get("d").is_none() && keys[1].get("d").is_some());
    assert_eq!(keys[0]["key_ops"][0], "verify");
    assert_eq!(keys[1]["key_ops"][0], "sign");
    for k in keys {
        assert_eq!(
            (k["alg"].as_str(), k["kty"].as_str()),
            (Some("ES384"), Some("EC"))
        );
    }
    assert!(
        r.stderr.contains(kid) && r.stderr.contains("ES384"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("stratus keys public"), "{}", r.stderr);
    // No temporary files left beside it.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    // Never replaces a key by accident; --force does.
    let before = std::fs::read(&file).unwrap();
    let r = run(&["keys", "generate", "--alg", "ES384", "--out", p(&file)]);
    assert_one_line_error(&r, &["client.jwks", "--force"]);
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let r = run(&[
        "keys",
        "generate",
        "--alg",
        "es384",
        "--force",
        "--out",
        p(&file),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(std::fs::read(&file).unwrap(), before);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);

    let r = run(&["keys", "generate", "--out", p(tmp.path())]);
    assert_one_line_error(&r, &["is a folder"]);
}

#[test]
fn generate_rsa_with_a_chosen_kid_and_register_its_public_part() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rsa.jwks");
    let r = run(&["keys", "generate", "--kid", "site-2026", "--out", p(&file)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(v["keys"][1]["kid"], "site-2026");
    assert_eq!(v["keys"][1]["alg"], "RS384", "RS384 is the default");
    assert!(v["keys"][1].get("qi").is_some());

    let r = run(&["keys", "public", p(&file)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let public = json(&r.stdout);
    let keys = public["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "public and private halves become one key");
    for m in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(keys[0].get(m).is_none(), "{m}");
    }
    assert_eq!(keys[0]["kid"], "site-2026");
    assert_eq!(keys[0]["key_ops"], serde_json::json!(["verify"]));
    authenticates(&file, &public);

    // --out writes the same thing to a file.
    let out = tmp.path().join("public.jwks");
    let r = run(&["keys", "public", p(&file), "--out", p(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&std::fs::read_to_string(&out).unwrap()), public);
    // The public file's public part is itself.
    let r = run(&["keys", "public", p(&out)]);
    assert_eq!(json(&r.stdout), public);
}

#[test]
fn generate_refuses_what_smart_servers_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("k.jwks");
    let r = run(&["keys", "generate", "--alg", "PS256", "--out", p(&file)]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("unsupported alg PS256: use RS384 or ES384"),
        "{}",
        r.stderr
    );
    let r = run(&["keys", "generate", "--bits", "1024", "--out", p(&file)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("2048, 3072 or 4096"), "{}", r.stderr);
    assert!(!file.exists());
}

#[test]
fn convert_pem_from_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(stratus_smart::keys::Alg::Es384, 0).unwrap();
    let pem = tmp.path().join("key.pem");
    std::fs::write(&pem, key.to_pkcs8_pem().unwrap()).unwrap();

    let a = run(&["keys", "convert", p(&pem)]);
    let b = run(&["keys", "convert", p(&pem)]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(
        a.stdout, b.stdout,
        "the kid is the thumbprint: same key, same file"
    );
    let v = json(&a.stdout);
    assert_eq!(v["keys"][0]["kid"], key.thumbprint());
    assert_eq!(v["keys"][0]["x"], key.public_jwk()["x"]);
    assert!(v["keys"][1].get("d").is_some());

    // `public` reads the PEM directly, too.
    let r = run(&["keys", "public", p(&pem)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r.stdout)["keys"][0], v["keys"][0]);

    let out = tmp.path().join("client.jwks");
    let r = run(&[
        "keys",
        "convert",
        p(&pem),
        "--kid",
        "k1",
        "--alg",
        "ES384",
        "--out",
        p(&out),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("k1"), "{}", r.stderr);
    #[cfg(unix)]
    assert_eq!(mode(&out), 0o600);
    let written = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(written["keys"][1]["kid"], "k1");
    authenticates(&out, &written);

    let r = run(&["keys", "convert", p(&pem), "--out", p(&out)]);
    assert_one_line_error(&r, &["client.jwks", "--force"]);
    let r = run(&["keys", "convert", p(&pem), "--alg", "RS384"]);
    assert_one_line_error(&r, &["key.pem", "holds an ES384 key, not RS384"]);
}

fn openssl(args: &[&str]) -> bool {
    StdCommand::new("openssl")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn convert_pem_files_made_by_openssl() {
    if !openssl(&["version"]) {
        eprintln!("openssl not installed: skipping the openssl-made PEM files");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = |name: &str| tmp.path().join(name);
    // SEC1 with the EC PARAMETERS block first, PKCS#1 RSA, PKCS#8 RSA and EC.
    assert!(openssl(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-out",
        p(&f("ec.pem"))
    ]));
    assert!(openssl(&[
        "pkey",
        "-in",
        p(&f("ec.pem")),
        "-out",
        p(&f("ec8.pem"))
    ]));
    assert!(openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        p(&f("rsa1.pem")),
        "2048"
    ]));
    assert!(openssl(&[
        "pkey",
        "-in",
        p(&f("rsa1.pem")),
        "-out",
        p(&f("rsa8.pem"))
    ]));
    for (a, b, alg) in [
        ("ec.pem", "ec8.pem", "ES384"),
        ("rsa1.pem", "rsa8.pem", "RS384"),
    ] {
        let text = std::fs::read_to_string(f(a)).unwrap();
        if a == "rsa1.pem" {
            assert!(text.contains("BEGIN RSA PRIVATE KEY"), "{text}");
        } else {
            assert!(text.contains("BEGIN EC PARAMETERS"), "{text}");
        }
        let ra = run(&["keys", "convert", "--alg", alg, p(&f(a))]);
        let rb = run(&["keys", "convert", p(&f(b))]);
        assert_eq!(ra.code, 0, "{a}: {}", ra.stderr);
        assert_eq!(ra.stdout, rb.stdout, "{a} and {b} are the same key");
        let out = f(&format!("{a}.jwks"));
        std::fs::write(&out, &ra.stdout).unwrap();
        authenticates(&out, &json(&run(&["keys", "public", p(&out)]).stdout));
    }

    // Keys SMART cannot use, and an encrypted key, each said in one line.
    assert!(openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        p(&f("p256.pem"))
    ]));
    let r = run(&["keys", "convert", p(&f("p256.pem"))]);
    assert_one_line_error(&r, &["p256.pem", "curve P-256", "P-384"]);
    assert!(openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        p(&f("ed.pem"))
    ]));
    let r = run(&["keys", "public", p(&f("ed.pem"))]);
    assert_one_line_error(&r, &["ed.pem", "EdDSA"]);
    assert!(openssl(&[
        "pkey",
        "-in",
        p(&f("ec8.pem")),
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        p(&f("enc.pem"))
    ]));
    let r = run(&["keys", "convert", p(&f("enc.pem"))]);
    assert_one_line_error(&r, &["enc.pem", "encrypted"]);
    assert!(openssl(&[
        "pkey",
        "-in",
        p(&f("ec8.pem")),
        "-pubout",
        "-out",
        p(&f("pub.pem"))
    ]));
    let r = run(&["keys", "convert", p(&f("pub.pem"))]);
    assert_one_line_error(&r, &["pub.pem", "a public key, not a private key"]);
}

#[test]
fn files_that_are_not_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 5] = [
        ("notes.txt", b"hello"),
        ("empty.jwks", b""),
        ("broken.json", b"{\"keys\": ["),
        ("other.json", b"{\"resourceType\": \"Patient\"}"),
        ("key.der", &[0x30, 0x82, 0xff, 0xfe, 0x00, 0x01]),
    ];
    for (name, content) in cases {
        let file = tmp.path().join(name);
        std::fs::write(&file, content).unwrap();
        for cmd in ["public", "convert"] {
            let r = run(&["keys", cmd, p(&file)]);
            assert_one_line_error(&r, &[name]);
        }
    }
    let r = run(&["keys", "public", p(&tmp.path().join("missing.jwks"))]);
    assert_one_line_error(&r, &["missing.jwks"]);
    // A JWKS with only public keys cannot be converted into a signing key.
    let key = SigningKey::generate(stratus_smart::keys::Alg::Es384, 0).unwrap();
    let public = tmp.path().join("public.jwks");
    std::fs::write(&public, key.public_jwks().to_string()).unwrap();
    let r = run(&["keys", "convert", p(&public)]);
    assert_one_line_error(&r, &["public.jwks", "no private key"]);
}
