//! Code tables: one row per coding of a CodeableConcept field, the `_dn_` tables of
//! cumulus-library's core study. A study declares them in a `codes` file rather than writing
//! the same unnesting SQL out for every field, so each is one readable entry and the SQL
//! that makes them lives in one place.
//!
//! ```toml
//! [[table]]
//! name = "encounter_dn_type"        # the study's prefix is added
//! source = "encounter"
//! field = "type[]"                  # `[]` marks a list; `dosageInstruction[].route` nests
//! priority = ["http://snomed.info/sct", "urn:oid:1.2.840.114350.1.13.%.7.10.698084.10110"]
//! ```
//!
//! The columns are `id`, then `row` (the 1-based position in the field's first list) when
//! the field starts with a list (`index = ["row", "dose_row"]` names the positions of more
//! lists), then `code`, `system`, `display`, `userSelected`, then any
//! `extra` fields read from the first list's element. Rows are distinct. With `priority`
//! (SQL LIKE patterns on the system, best first) only one coding per id is kept: the one
//! whose system matches the earliest pattern, the lowest code among equals; codings whose
//! system matches none are dropped. This is cumulus-library's shape and rule.

use std::path::Path;

use serde::Deserialize;

use crate::LibraryError;

/// A `codes` file: the code tables a study builds, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodesFile {
    #[serde(rename = "table", default)]
    pub tables: Vec<CodeTable>,
}

/// One code table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTable {
    pub name: String,
    pub source: String,
    pub field: String,
    #[serde(default)]
    pub priority: Vec<String>,
    /// `[field of the first list's element, output column]` pairs.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
    /// Names for the position columns of the field's lists, first list first (default
    /// `["row"]`); a list without a name is unnested without its position.
    #[serde(default)]
    pub index: Option<Vec<String>>,
}

/// One step of a field's path.
pub(crate) struct Segment<'a> {
    pub name: &'a str,
    pub list: bool,
}

impl CodesFile {
    pub fn parse(text: &str, file: &Path) -> Result<CodesFile, LibraryError> {
        let f: CodesFile = toml::from_str(text).map_err(|e| LibraryError::toml(file, text, &e))?;
        for t in &f.tables {
            t.segments().map_err(|message| LibraryError::Manifest {
                path: file.into(),
                message: format!("table {}: {message}", t.name),
            })?;
        }
        Ok(f)
    }
}

impl CodeTable {
    fn segments(&self) -> Result<Vec<Segment<'_>>, String> {
        let segs = segments(&self.field)?;
        if !self.extra.is_empty() && !segs[0].list {
            return Err("extra fields need a field that starts with a list".into());
        }
        let lists = segs.iter().filter(|s| s.list).count();
        if let Some(names) = &self.index
            && (names.len() > lists || names.iter().any(|n| !plain(n)))
        {
            return Err(format!(
                "index {names:?}: at most one plain name per list of {:?}",
                self.field
            ));
        }
        for (f, col) in &self.extra {
            if !plain(f) || !plain(col) {
                return Err(format!("extra {f:?} as {col:?}: not a plain name"));
            }
        }
        Ok(segs)
    }

    /// The dotted FHIR paths this table reads, for the study's source schema. Contained
    /// resources are left to the manifest's `contained.<Type>.…` entries.
    pub fn source_paths(&self) -> Vec<String> {
        let Ok(segs) = self.segments() else {
            return Vec::new();
        };
        if segs[0].name == "contained" {
            return Vec::new();
        }
        let path: Vec<&str> = segs.iter().map(|s| s.name).collect();
        let mut out = vec![format!("{}.coding.code", path.join("."))];
        for (f, _) in &self.extra {
            out.push(format!("{}.{f}", segs[0].name));
        }
        out
    }

    /// The index column of each list in the field, first list first: `index` when given,
    /// else `row` for a field that starts with a list.
    fn index_names(&self, segs: &[Segment]) -> Vec<String> {
        match (&self.index, segs[0].list) {
            (Some(names), _) => names.clone(),
            (None, true) => vec!["row".into()],
            (None, false) => Vec::new(),
        }
    }

    /// The statements that make `<table>`: one `CREATE TABLE <table> AS …`, preceded by two
    /// working tables (`<table>_tmp_*`, dropped after the build) when there are priorities.
    pub fn sql(&self, table: &str) -> Result<Vec<String>, LibraryError> {
        let segs = self
            .segments()
            .map_err(|message| LibraryError::table(table, message))?;
        let mut names = self.index_names(&segs).into_iter();
        // Columns carried from step to step: the id and the list positions (`lead`), then
        // the extras, which are read at the first list.
        let mut lead: Vec<String> = vec!["id".into()];
        let mut extras: Vec<String> = Vec::new();
        let mut ctes = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let (from, field) = if i == 0 {
                (self.source.clone(), format!("\"{}\"", s.name))
            } else {
                (format!("s{}", i - 1), format!("v['{}']", s.name))
            };
            let carried = columns(&lead, &extras);
            let index = if s.list { names.next() } else { None };
            if let Some(index) = index {
                // The 1-based position in the list, as cumulus-library's `row`.
                let read: String = if i == 0 {
                    self.extra
                        .iter()
                        .map(|(f, col)| format!(", arr[r]['{f}'] AS {col}"))
                        .collect()
                } else {
                    String::new()
                };
                ctes.push(format!(
                    "s{i} AS (SELECT {carried}, CAST(r AS BIGINT) AS \"{index}\"{read}, \
                     arr[r] AS v FROM (SELECT {carried}, {field} AS arr, \
                     unnest(range(1, coalesce(CAST(array_length({field}) AS BIGINT), 0) + 1)) \
                     AS r FROM {from}))"
                ));
                lead.push(format!("\"{index}\""));
                if i == 0 {
                    extras.extend(self.extra.iter().map(|(_, c)| c.clone()));
                }
            } else if s.list {
                ctes.push(format!(
                    "s{i} AS (SELECT {carried}, unnest({field}) AS v FROM {from})"
                ));
            } else {
                ctes.push(format!(
                    "s{i} AS (SELECT {carried}, {field} AS v FROM {from})"
                ));
            }
        }
        let last = segs.len() - 1;
        let carried = columns(&lead, &extras);
        ctes.push(format!(
            "codings AS (SELECT {carried}, unnest(v['coding']) AS c FROM s{last})"
        ));
        // Output order: id, positions, the coding, then the extras.
        let lead = lead.join(", ");
        let tail: String = extras.iter().map(|c| format!(", {c}")).collect();
        ctes.push(format!(
            "flat AS (SELECT DISTINCT {lead}, c['code'] AS code, c['system'] AS system, \
             c['display'] AS display, c['userSelected'] AS \"userSelected\"{tail} FROM codings)"
        ));
        let cols = format!("{lead}, code, system, display, \"userSelected\"{tail}");
        // A field with at most a list at each end (`category[]`, `component[].code`), the
        // common case: each resource's distinct codings in one pass (src/lists.rs), not
        // unnested step by step and then made distinct over every row of the table (a hash
        // of 16 million rows for observation categories).
        let inner = &segs[1..];
        let simple = inner
            .iter()
            .take(inner.len().saturating_sub(1))
            .all(|s| !s.list)
            && self.extra.is_empty()
            && self
                .index
                .as_ref()
                .is_none_or(|names| names.iter().map(String::as_str).eq(["row"]));
        let row = if segs[0].list {
            ", x['row'] AS \"row\""
        } else {
            ""
        };
        let path: Vec<&str> = inner.iter().map(|s| s.name).collect();
        let from_x = |x: &str| {
            format!(
                "SELECT id{row}, x['code'] AS code, x['system'] AS system, \
                 x['display'] AS display, x['userSelected'] AS \"userSelected\" \
                 FROM (SELECT id, {x} AS x FROM {})",
                self.source
            )
        };
        let (first, path) = (segs[0].name, path.join("."));
        if simple && !self.priority.is_empty() {
            // The kept coding, picked in the same pass (src/lists.rs): the steps below
            // ranked every coding of the table in a window over all ids.
            let pick = from_x(&format!(
                "pick_coding_row(\"{first}\", '{path}', '{table}')"
            ));
            return Ok(vec![format!(
                "CREATE TABLE {table} AS {pick} WHERE x IS NOT NULL"
            )]);
        }
        let select = if simple {
            from_x(&format!("unnest(coding_rows(\"{first}\", '{path}'))"))
        } else {
            format!("WITH {} SELECT {cols} FROM flat", ctes.join(", "))
        };
        if self.priority.is_empty() {
            return Ok(vec![format!("CREATE TABLE {table} AS {select}")]);
        }
        // With priorities, three statements: the codings and the rank of each distinct
        // system are stored as working tables first, then joined on the system, so each
        // pattern meets each system once. As one query joining the codings to a table of
        // LIKE patterns, every coding met every pattern, and DataFusion 55 compiled a
        // matcher per row for a pattern with an inner wildcard: 4 s on the 37,000
        // encounter types of 1,000 patients, against 0.1 s now.
        let codings = format!("{table}_tmp_codings");
        let systems = format!("{table}_tmp_systems");
        let arms: String = self
            .priority
            .iter()
            .enumerate()
            .map(|(i, p)| format!(" WHEN system LIKE '{}' THEN {i}", p.replace('\'', "''")))
            .collect();
        // Stored tables have lower-case columns.
        let stored = cols.to_lowercase();
        Ok(vec![
            format!("CREATE TABLE {codings} AS {select}"),
            format!(
                "CREATE TABLE {systems} AS SELECT system, priority FROM (\
                 SELECT system, CASE{arms} END AS priority \
                 FROM (SELECT DISTINCT system FROM {codings})) WHERE priority IS NOT NULL"
            ),
            format!(
                "CREATE TABLE {table} AS SELECT {stored} FROM (\
                 SELECT f.*, row_number() OVER (PARTITION BY f.id \
                 ORDER BY s.priority, f.code) AS n \
                 FROM {codings} AS f INNER JOIN {systems} AS s ON s.system = f.system) \
                 WHERE n = 1"
            ),
        ])
    }
}

/// The steps of a dotted field path, where `[]` marks a list: `reaction[].manifestation[]`.
pub(crate) fn segments(field: &str) -> Result<Vec<Segment<'_>>, String> {
    let segs: Vec<Segment> = field
        .split('.')
        .map(|s| match s.strip_suffix("[]") {
            Some(name) => Segment { name, list: true },
            None => Segment {
                name: s,
                list: false,
            },
        })
        .collect();
    if let Some(bad) = segs.iter().find(|s| !plain(s.name)) {
        return Err(format!("field {field:?}: bad step {:?}", bad.name));
    }
    Ok(segs)
}

/// A name SQL can take unquoted: a letter, then letters, digits or `_`.
pub(crate) fn plain(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The columns carried from one unnesting step to the next, as a select list.
fn columns(lead: &[String], extras: &[String]) -> String {
    lead.iter()
        .chain(extras)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(field: &str) -> CodeTable {
        CodeTable {
            name: "t".into(),
            source: "src".into(),
            field: field.into(),
            priority: Vec::new(),
            extra: Vec::new(),
            index: None,
        }
    }

    #[test]
    fn paths_name_the_codings_read() {
        assert_eq!(
            table("dosageInstruction[].route").source_paths(),
            ["dosageInstruction.route.coding.code"]
        );
        assert!(table("contained[].code").source_paths().is_empty());
    }

    #[test]
    fn bad_fields_are_refused() {
        assert!(table("a b").sql("x").is_err());
        let mut t = table("code");
        t.extra = vec![("id".into(), "contained_id".into())];
        assert!(t.sql("x").is_err(), "extras need a list");
        let bad = "[[table]]\nname = \"x\"\nsource = \"s\"\nfield = \"a..b\"\n";
        assert!(CodesFile::parse(bad, Path::new("codes.toml")).is_err());
        let typo = "[[table]]\nname = \"x\"\nsource = \"s\"\nfeld = \"code\"\n";
        let err = CodesFile::parse(typo, Path::new("s/codes.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("s/codes.toml: line 4, column 1: unknown field `feld`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}
