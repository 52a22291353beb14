//! Work folders `NNN.nickname` inside a managed folder: one per export run. Which one a run
//! uses follows smart-fetch: a `--nickname` that names the newest folder resumes it, one
//! that names an older folder is refused, a new one makes a new folder; without a nickname
//! the newest folder is resumed when it was made with the same filters and since.

use std::path::{Path, PathBuf};

use crate::FetchError;
use crate::metadata::{self, Output};

/// One work folder.
#[derive(Debug, Clone)]
pub struct Workdir {
    pub number: u32,
    pub nickname: String,
    pub path: PathBuf,
}

impl Workdir {
    pub fn name(&self) -> String {
        format!("{:03}.{}", self.number, self.nickname)
    }

    pub fn metadata(&self) -> Result<Option<Output>, FetchError> {
        metadata::read(&self.path)
    }
}

/// The work folders of `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<Workdir>, FetchError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(FetchError::io(root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| FetchError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((num, nick)) = name.split_once('.') else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(number) = num.parse::<u32>() else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        out.push(Workdir {
            number,
            nickname: nick.to_owned(),
            path: entry.path(),
        });
    }
    out.sort_by_key(|w| w.number);
    Ok(out)
}

/// What a work folder was made for: resuming needs the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub filters: std::collections::BTreeMap<String, Vec<String>>,
    pub since: Option<String>,
    pub since_mode: Option<String>,
}

impl Context {
    pub fn matches(&self, m: &Output) -> bool {
        m.filters == self.filters && m.since == self.since && m.since_mode == self.since_mode
    }
}

/// Picks the work folder for this run, creating it if needed. `today` names a new folder
/// when no nickname is given.
pub fn choose(
    root: &Path,
    nickname: Option<&str>,
    context: &Context,
    today: &str,
) -> Result<Workdir, FetchError> {
    if let Some(n) = nickname
        && (n.is_empty() || n.contains('/') || n.contains('\\'))
    {
        return Err(FetchError::Usage(format!(
            "--nickname '{n}' cannot be used as a folder name"
        )));
    }
    let all = list(root)?;
    let newest = all.last();
    if let Some(n) = nickname {
        if let Some(w) = newest
            && w.nickname == n
        {
            check_context(w, context)?;
            return Ok(w.clone());
        }
        if let Some(old) = all.iter().find(|w| w.nickname == n) {
            return Err(FetchError::Usage(format!(
                "work folder {} has nickname '{n}' but is too old to resume (newer folders exist); choose a new nickname",
                old.name()
            )));
        }
    } else if let Some(w) = newest
        && let Some(m) = w.metadata()?
        && context.matches(&m)
    {
        // A since-auto run only resumes a folder that is still unfinished: otherwise it
        // would find nothing to do forever.
        let auto = context.since.as_deref() == Some("auto");
        if !auto || !m.is_complete() {
            return Ok(w.clone());
        }
    }
    let number = newest.map_or(1, |w| w.number + 1);
    let nickname = nickname.unwrap_or(today).to_owned();
    let w = Workdir {
        number,
        path: root.join(format!("{number:03}.{nickname}")),
        nickname,
    };
    std::fs::create_dir_all(&w.path).map_err(|e| FetchError::io(&w.path, e))?;
    Ok(w)
}

fn check_context(w: &Workdir, context: &Context) -> Result<(), FetchError> {
    if let Some(m) = w.metadata()?
        && !context.matches(&m)
    {
        let mut diffs = Vec::new();
        if m.filters != context.filters {
            diffs.push(format!("types and filters (it has {:?})", m.filters));
        }
        if m.since != context.since {
            diffs.push(format!("--since (it has {:?})", m.since));
        }
        if m.since_mode != context.since_mode {
            diffs.push(format!("--since-mode (it has {:?})", m.since_mode));
        }
        return Err(FetchError::Usage(format!(
            "work folder {} was made with different {}; use the same options to resume it, or a new --nickname",
            w.name(),
            diffs.join(" and ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx() -> Context {
        Context {
            filters: BTreeMap::from([("Patient".to_owned(), vec![])]),
            since: None,
            since_mode: None,
        }
    }

    fn finish(w: &Workdir, c: &Context) {
        let m = Output {
            kind: "output".into(),
            filters: c.filters.clone(),
            since: c.since.clone(),
            since_mode: c.since_mode.clone(),
            complete: Some(true),
            ..Output::default()
        };
        metadata::write(&w.path, &m).unwrap();
    }

    #[test]
    fn nicknames_resume_or_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = choose(root, Some("first"), &ctx(), "2026-11-23").unwrap();
        assert_eq!(a.name(), "001.first");
        finish(&a, &ctx());
        assert_eq!(choose(root, Some("first"), &ctx(), "x").unwrap().number, 1);
        let b = choose(root, Some("second"), &ctx(), "x").unwrap();
        assert_eq!(b.name(), "002.second");
        let err = choose(root, Some("first"), &ctx(), "x").unwrap_err();
        assert!(err.to_string().contains("too old"), "{err}");
        // No nickname: the newest folder is reused when its context matches...
        finish(&b, &ctx());
        assert_eq!(choose(root, None, &ctx(), "today").unwrap().number, 2);
        // ...and a different context makes a new dated folder.
        let mut other = ctx();
        other.since = Some("2020-01-01".into());
        other.since_mode = Some("updated".into());
        assert_eq!(
            choose(root, None, &other, "today").unwrap().name(),
            "003.today"
        );
        // A nickname with another context is refused rather than mixed.
        let err = choose(root, Some("second"), &other, "x").unwrap_err();
        assert!(err.to_string().contains("too old") || err.to_string().contains("different"));
    }
}
