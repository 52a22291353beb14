//! The consumer's pages in a real headless Chromium, driven over WebDriver (chromedriver):
//! make a key pair on the key generator page, register with it on the registration page,
//! then get a token with the private key the page handed out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test says so and passes, except under CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratus_import::{ImportConfig, Store};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

struct Driver {
    child: Child,
    http: reqwest::blocking::Client,
    base: String,
    session: String,
}

impl Driver {
    fn start(driver: &Path, browser: &Path, profile: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags a closed network and a root user need (see the machine notes).
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Driver {
            child,
            http,
            base,
            session,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let r: Value = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if r["value"].get("error").is_some() {
            panic!("{path}: {r}");
        }
        r["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}));
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        );
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
    }

    /// Polls `js` until it returns something truthy.
    fn wait_for(&self, js: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.script(js);
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {js}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn register_a_provider_with_a_generated_key_in_a_real_browser() {
    let driver = find("STRATUS_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let browser = find(
        "STRATUS_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let (Some(driver), Some(browser)) = (driver, browser) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: no chromium/chromedriver here (apt-get install chromium chromium-driver)"
        );
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
