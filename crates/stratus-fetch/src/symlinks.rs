//! The top level of a managed folder holds relative symlinks `{Type}.NNN.ndjson[.gz]` to
//! the files that together are the current data: those of the newest full export of the
//! type and of every since-export after it. cumulus-etl reads the top level and gets
//! exactly that, without knowing about work folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::FetchError;
use crate::files;
use crate::hydrate;
use crate::metadata::Output;
use crate::types;
use crate::workdir::{self, Workdir};

/// Rebuilds every top-level symlink of `root`. Returns how many links there are.
pub fn reset_all(root: &Path) -> Result<usize, FetchError> {
    // Each work folder's files are listed once, not once per type.
    let mut dirs: Vec<(Workdir, Output, BTreeMap<String, Vec<PathBuf>>)> = Vec::new();
    for w in workdir::list(root)? {
        if let Some(m) = w.metadata()? {
            let files = files::by_type(&w.path)?;
            dirs.push((w, m, files));
        }
    }
    let scope: Vec<&str> = types::scope_types().collect();
    remove_links(root, &scope)?;
    let mut count = 0;
    for t in scope.iter().copied() {
        let sources = hydrate::source_types(t);
        let mut active: Vec<(&Workdir, &BTreeMap<String, Vec<PathBuf>>)> = Vec::new();
        // Filter sets of newer full exports: an older export whose filters are a subset of
        // one of them holds nothing they do not.
        let mut hiding: Vec<&[String]> = Vec::new();
        for (w, m, files) in dirs.iter().rev() {
            let present: Vec<&str> = sources
                .iter()
                .copied()
                .filter(|s| m.filters.contains_key(*s))
                .collect();
            if present.is_empty() {
                continue;
            }
            let own: &[String] = m.filters_of(t).unwrap_or_default();
            if !own.is_empty() && hiding.iter().any(|h| own.iter().all(|f| h.contains(f))) {
                continue;
            }
            active.push((w, files));
            if present.iter().all(|s| m.full_for(s)) {
                if own.is_empty() {
                    break;
                }
                hiding.push(own);
            }
        }
        let mut n = 0;
        for (w, files) in active.iter().rev() {
            for f in files.get(t).into_iter().flatten() {
                let Some(name) = f.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    continue;
                };
                n += 1;
                let gz = if name.ends_with(".gz") { ".gz" } else { "" };
                let link = root.join(format!("{t}.{n:03}.ndjson{gz}"));
                let target = Path::new(&w.name()).join(&name);
                symlink(&target, &link)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Removes the top-level links of `types` (`{Type}.NNN.ndjson[.gz]`), in one pass.
fn remove_links(root: &Path, types: &[&str]) -> Result<(), FetchError> {
    for entry in std::fs::read_dir(root).map_err(|e| FetchError::io(root, e))? {
        let entry = entry.map_err(|e| FetchError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name
            .split_once('.')
            .is_some_and(|(t, _)| types.contains(&t));
        if ours && entry.file_type().is_ok_and(|ft| ft.is_symlink()) {
            std::fs::remove_file(entry.path()).map_err(|e| FetchError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<(), FetchError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| FetchError::io(link, e))
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> Result<(), FetchError> {
    // Without symlinks (Windows without developer mode), a copy is the safe stand-in.
    let from = link.parent().unwrap_or(Path::new(".")).join(target);
    std::fs::copy(&from, link)
        .map(|_| ())
        .map_err(|e| FetchError::io(link, e))
}
