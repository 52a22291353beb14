//! The consumer's pages in a real headless Chromium, driven over WebDriver (chromedriver):
//! make a key pair on the key generator page, register with it on the registration page,
//! then get a token with the private key the page handed out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test says so and passes, except under CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used)]

mod webdriver;

use serde_json::Value;
use stratus_import::{ImportConfig, Store};
use webdriver::Driver;

#[test]
fn register_a_provider_with_a_generated_key_in_a_real_browser() {
    let Some((driver, browser)) = webdriver::tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut c = ImportConfig::new(Store::Discard, tmp.path().join("state"));
    c.port = 0;
    let consumer = stratus_import::start(c).unwrap();
    let d = Driver::start(&driver, &browser, &tmp.path().join("profile"));

    // The key generator page makes a pair and shows both halves.
    d.goto(&format!("{}/keys", consumer.url));
    d.click("#generate");
    let public = d.wait_for("return document.getElementById('public').value");
    let private = d.script("return document.getElementById('private').value");
    let public: Value = serde_json::from_str(public.as_str().unwrap()).unwrap();
    let private: Value = serde_json::from_str(private.as_str().unwrap()).unwrap();
    assert_eq!(public["keys"][0]["kty"], "EC");
    assert!(
        public["keys"][0].get("d").is_none(),
        "the public JWKS holds a private member"
    );
    assert!(
        private["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k.get("d").is_some())
    );

    // The registration page: paste the public JWKS, fill the rest, submit.
    d.goto(&format!("{}/", consumer.url));
    d.type_into("#jwks", &public.to_string());
    d.type_into("#consumer_client_id", "consumer-at-ehr");
    d.type_into("#provider_base_url", "https://ehr.example.org/fhir");
    d.click("#submit");
    let client_id = d.wait_for("return document.getElementById('out').dataset.clientId");
    let client_id = client_id.as_str().unwrap().to_owned();
    let shown = d.script("return document.getElementById('out').textContent");
    assert!(shown.as_str().unwrap().contains(&client_id), "{shown}");

    // A mistake is shown, not swallowed.
    d.goto(&format!("{}/", consumer.url));
    d.type_into("#jwks", "{not json");
    d.type_into("#consumer_client_id", "x");
    d.type_into("#provider_base_url", "https://ehr.example.org/fhir");
    d.click("#submit");
    let err = d.wait_for(
        "const o = document.getElementById('out'); return !o.hidden && o.className.includes('error') && o.textContent",
    );
    assert!(err.as_str().unwrap().contains("not JSON"), "{err}");

    // The registration is real: the page's private key gets a token for that client.
    let key = stratus_smart::keys::SigningKey::from_jwks(&private, None).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = rt.block_on(async {
        let c = stratus_http::Client::new(
            &consumer.url,
            stratus_http::Auth::Smart(Box::new(stratus_http::SmartClient::new(
                client_id.clone(),
                key,
                None,
                None,
            ))),
            Default::default(),
        )
        .unwrap();
        c.authorization().await
    });
    assert!(token.unwrap().unwrap().starts_with("Bearer "));
}
