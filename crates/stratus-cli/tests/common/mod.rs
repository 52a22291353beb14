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
