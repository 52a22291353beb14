//! What every CLI test binary needs: the `stratus` binary with a clean environment, a run
//! captured as exit code and text, and the shared Synthea sample.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// `../shared/data/synthea-r4-100` beside the repository (override with
/// STRATUS_SYNTHEA_DIR).
pub fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

/// The binary, without the environment variables that would change its behaviour.
pub fn stratus() -> Command {
    let mut c = Command::cargo_bin("stratus").unwrap();
    c.env_remove("STRATUS_LOG")
        .env_remove("STRATUS_THREADS")
        .env_remove("STRATUS_CONFIG");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Run {
    let out = stratus().args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An S3 server (s3s-fs: buckets are folders under `root`) on 127.0.0.1, keys test/test.
pub fn s3_server(root: &Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single("test", "test"));
    let service = b.build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
    });
    format!("http://{addr}")
}
