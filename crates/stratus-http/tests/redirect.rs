//! A file URL that answers 307 to another host (a pre-signed storage URL): the client
//! follows it, and the token does not go along.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use reqwest::Method;
use stratus_http::{Auth, Client, HttpConfig};

fn spawn(app: axum::Router) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                axum::serve(l, app).await.unwrap();
            });
    });
    port
}

#[test]
fn redirects_to_another_host_drop_the_token() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let storage = spawn(axum::Router::new().route(
        "/bucket/file.ndjson",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let s2 = s2.clone();
            async move {
                s2.lock().unwrap().push(
                    headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
                "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n"
            }
        }),
    ));
    // The FHIR server is 127.0.0.1; the storage is reached as "localhost": another host.
    let fhir = spawn(axum::Router::new().route(
        "/fhir/file",
        axum::routing::get(move || async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(
                    "location",
                    format!("http://localhost:{storage}/bucket/file.ndjson"),
                )],
            )
        }),
    ));
    let client = Client::new(
        &format!("http://127.0.0.1:{fhir}/fhir"),
        Auth::Bearer("secret".into()),
        HttpConfig::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        let r = client
            .send(
                Method::GET,
                &format!("http://127.0.0.1:{fhir}/fhir/file"),
                |r| r,
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    });
    assert!(body.contains("Patient"));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "the token must not reach the storage host"
    );
}
