//! What every CLI test binary needs: the `stratus` binary with a clean environment, a run
//! captured as exit code and text, and the shared Synthea sample.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

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

/// A long-running `stratus` process (a server), killed on drop.
pub struct Running {
    pub child: Child,
    /// What followed the awaited prefix on its line (a URL).
    pub value: String,
    /// The stdout lines printed before that one.
    pub before: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `stratus ARGS` (with `env` added) and waits for the stdout line that starts with
/// `prefix`; the rest of stdout is drained in the background so the process never blocks.
pub fn spawn(args: &[&str], env: &[(&str, &str)], prefix: &str) -> Running {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
    cmd.args(args)
        .env_remove("STRATUS_CONFIG")
        .env_remove("STRATUS_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix(prefix) {
            std::thread::spawn(move || for _ in lines {});
            return Running {
                child,
                value: rest.trim().to_owned(),
                before,
            };
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("stratus {args:?} never printed '{prefix}': {before:?}");
}
