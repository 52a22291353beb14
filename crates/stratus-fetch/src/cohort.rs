//! The cohort to crawl: ids or MRNs from `--id-list`, from an `--id-file` (one per line, or
//! a CSV with an `id` or `mrn` column), or the Patient files of a folder.

use std::path::Path;

use crate::FetchError;

/// Values from a comma-separated list; blanks dropped, duplicates removed, order kept.
pub fn from_list(list: &str) -> Vec<String> {
    dedup(list.split(',').map(str::trim).map(str::to_owned))
}

/// Values from a file: one per line, or a CSV (by extension) with an `id` (preferred) or
/// `mrn` column, found case-insensitively.
pub fn from_file(path: &Path) -> Result<Vec<String>, FetchError> {
    let text = std::fs::read_to_string(path).map_err(|e| FetchError::io(path, e))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        return Ok(dedup(text.lines().map(|l| l.trim().to_owned())));
    }
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or_default());
    let col = ["id", "mrn"]
        .iter()
        .find_map(|want| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(want))
        })
        .ok_or_else(|| FetchError::Input {
            path: path.to_path_buf(),
            line: 1,
            message: "has no 'id' or 'mrn' header".into(),
        })?;
    Ok(dedup(lines.map(|l| {
        csv_fields(l)
            .get(col)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })))
}

fn dedup(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .filter(|v| !v.is_empty() && seen.insert(v.clone()))
        .collect()
}

/// The fields of one CSV line (quotes with "" escapes; no line breaks inside fields).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                push(&mut out, '"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => push(&mut out, c),
        }
    }
    out
}

fn push(out: &mut [String], c: char) {
    if let Some(last) = out.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("cohort.csv");
        std::fs::write(&csv, "name,MRN\r\n\"Doe, J\",123\r\nX,456\r\nY,123\r\n").unwrap();
        assert_eq!(from_file(&csv).unwrap(), ["123", "456"]);
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "name\nx\n").unwrap();
        assert!(
            from_file(&bad)
                .unwrap_err()
                .to_string()
                .contains("bad.csv:1")
        );
        let txt = dir.path().join("mrns.txt");
        std::fs::write(&txt, "a\n\n b \na\n").unwrap();
        assert_eq!(from_file(&txt).unwrap(), ["a", "b"]);
        assert_eq!(from_list("x, y,,x"), ["x", "y"]);
    }
}
