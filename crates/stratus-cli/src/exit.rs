//! Exit codes, documented in the README so scripts can branch on them.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: everything worked and the input was clean.
    Success,
    /// 1: the command failed; the message says why.
    Failure,
    /// 3: the command finished, but skipped bad input (each bad line was reported).
    BadInput,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(match o {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::BadInput => 3,
        })
    }
}
