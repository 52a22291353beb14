//! A WebDriver client for tests: drives a real headless Chromium through chromedriver.
//! Shared by the test binaries that check pages in a browser (included by path).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

pub struct Driver {
    child: Child,
    http: reqwest::blocking::Client,
    base: String,
    session: String,
}

impl Driver {
    pub fn start(driver: &Path, browser: &Path, profile: &Path) -> Driver {
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

    pub fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
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

    pub fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}));
    }

    pub fn element(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        );
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        );
    }

    pub fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
    }

    /// Polls `js` until it returns something truthy.
    pub fn wait_for(&self, js: &str) -> Value {
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

/// chromedriver and chromium, or `None` (after saying so) where they are not installed;
/// under CI (`CI` set) their absence fails the test.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let driver = find("STRATUS_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let browser = find(
        "STRATUS_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    match (driver, browser) {
        (Some(d), Some(b)) => Some((d, b)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs chromium and chromedriver (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: no chromium/chromedriver here (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}
