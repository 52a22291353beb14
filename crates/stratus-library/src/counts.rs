//! Counts workflows: each table is a CUBE over some columns of a source table, counting
//! distinct patients (or a secondary id), with every real NULL shown as `cumulus__none` (a
//! NULL in the output means "all values"), and every cell under the minimum count left out.
//! The workflow file has cumulus-library's `counts` format, so a site's own workflows work.
//!
//! One difference, on purpose: cumulus-library computes the primary and secondary counts
//! in two CUBEs joined on the cells' values glued with `-`, so two cells whose values differ
//! only in where a `-` falls (`a-b`,`c` and `a`,`b-c`) can be mixed up. Here both counts come
//! from one CUBE, which gives the same cells without that collision.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::LibraryError;

/// What marks a real NULL in a counts table's dimension columns.
pub const NONE: &str = "cumulus__none";
/// Cells counting fewer subjects are not written (cumulus-library's default `min_subject`).
pub const MIN_COUNT: u64 = 10;

#[derive(Debug, Deserialize)]
pub struct Workflow {
    #[serde(default)]
    pub config_type: Option<String>,
    pub tables: BTreeMap<String, CountTable>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountTable {
    pub source_table: String,
    pub table_cols: Vec<Col>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub primary_id: Option<String>,
    #[serde(default)]
    pub secondary_table: Option<String>,
    #[serde(default)]
    pub secondary_cols: Vec<Col>,
    #[serde(default)]
    pub secondary_id: Option<String>,
    #[serde(default)]
    pub alt_secondary_join_id: Option<String>,
    #[serde(default)]
    pub filter_cols: Vec<Filter>,
    #[serde(default)]
    pub where_clauses: Option<Vec<String>>,
    #[serde(default)]
    pub min_subject: Option<u64>,
}

/// A column: a name, or `[name, type]` (the type is documentation only).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Col {
    Name(String),
    Typed(Vec<String>),
}

impl Col {
    fn name(&self) -> &str {
        match self {
            Col::Name(n) => n,
            Col::Typed(v) => v.first().map_or("", String::as_str),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
    #[serde(default)]
    pub include_nulls: bool,
}

impl Workflow {
    pub fn parse(text: &str, file: &Path) -> Result<Workflow, LibraryError> {
        let w: Workflow = toml::from_str(text).map_err(|e| LibraryError::toml(file, text, &e))?;
        if let Some(t) = &w.config_type
            && t != "counts"
        {
            return Err(LibraryError::Manifest {
                path: file.into(),
                message: format!("config_type {t:?}: only counts workflows are supported"),
            });
        }
        Ok(w)
    }
}

/// An identifier as SQL: unquoted when plain (DataFusion folds it to lower case, as Athena
/// does every column name), quoted otherwise.
fn ident(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The query that fills a counts table, in parts, so that the build can count the cube's
/// cells itself ([`crate::cube`]) and leave only the choice of cells to SQL.
pub struct CountQuery {
    /// The rows counted: the id columns (the primary, then the secondary if any) and the
    /// dimension columns with `cumulus__none` for NULL, filtered and joined as the workflow
    /// says.
    pub input: String,
    /// How many id columns `input` starts with.
    pub ids: usize,
    /// The cells with their distinct counts (`cnt_primary`, `cnt_secondary`, then the
    /// columns, NULL for "all"), in SQL over a CTE named `replaced` holding `input`.
    pub powerset: String,
    /// The cells kept, over a CTE named `powerset`.
    pub select: String,
}

impl CountQuery {
    /// The whole `SELECT` in SQL.
    pub fn inline(&self) -> String {
        format!(
            "WITH replaced AS ({}), powerset AS ({}) {}",
            self.input, self.powerset, self.select
        )
    }

    /// The `SELECT` with the cells read from table `powerset`.
    pub fn over(&self, powerset: &str) -> String {
        format!(
            "WITH powerset AS (SELECT * FROM {powerset}) {}",
            self.select
        )
    }
}

/// The query that fills counts table `t`, with cells under `min_count` left out (a
/// table's own `min_subject` wins).
pub fn query(t: &CountTable, min_count: u64) -> CountQuery {
    let primary = ident(t.primary_id.as_deref().unwrap_or("subject_ref"));
    let secondary = t.secondary_id.as_deref().map(ident);
    let min = t.min_subject.unwrap_or(min_count);
    let cols: Vec<String> = t
        .table_cols
        .iter()
        .chain(&t.secondary_cols)
        .map(|c| ident(c.name()))
        .collect();
    let mut picked = vec![format!("p.{primary}")];
    if let Some(s) = &secondary {
        picked.push(format!("p.{s}"));
    }
    picked.extend(
        t.table_cols
            .iter()
            .map(|c| format!("p.{}", ident(c.name()))),
    );
    picked.extend(
        t.secondary_cols
            .iter()
            .map(|c| format!("s.{}", ident(c.name()))),
    );
    let mut from = format!("{} AS p", ident(&t.source_table));
    if let Some(table) = &t.secondary_table {
        let on = ident(
            t.alt_secondary_join_id
                .as_deref()
                .or(t.secondary_id.as_deref())
                .or(t.primary_id.as_deref())
                .unwrap_or("subject_ref"),
        );
        from.push_str(&format!(
            " INNER JOIN {} AS s ON s.{on} = p.{on}",
            ident(table)
        ));
    }
    let filters: Vec<String> = t
        .filter_cols
        .iter()
        .map(|f| {
            let values: Vec<String> = f.values.iter().map(|v| quote(v)).collect();
            let col = format!("p.{}", ident(&f.name));
            let within = format!("{col} IN ({})", values.join(", "));
            if f.include_nulls {
                format!("({col} IS NULL OR {within})")
            } else {
                format!("({within})")
            }
        })
        .collect();
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    };
    let replaced: Vec<String> = cols
        .iter()
        .map(|c| format!("coalesce(CAST({c} AS VARCHAR), {}) AS {c}", quote(NONE)))
        .collect();
    let mut ids = vec![primary.clone()];
    ids.extend(secondary.clone());
    let cnt = if secondary.is_some() {
        "cnt_secondary"
    } else {
        "cnt_primary"
    };
    let mut keep = vec![format!("cnt_primary >= {min}")];
    match (&secondary, &t.where_clauses) {
        (Some(_), None) => keep.push(format!("cnt_secondary >= {min}")),
        // A cell with no secondary id at all has no row in cumulus-library's secondary
        // CUBE, so its inner join drops it.
        (Some(_), Some(_)) => keep.push("cnt_secondary > 0".into()),
        _ => {}
    }
    keep.extend(t.where_clauses.iter().flatten().cloned());
    CountQuery {
        input: format!(
            "SELECT {ids}, {replaced} FROM (SELECT {picked} FROM {from}{filter})",
            picked = picked.join(", "),
            ids = ids.join(", "),
            replaced = replaced.join(", "),
        ),
        ids: ids.len(),
        powerset: powerset(&cols, &primary, secondary.as_deref()),
        select: format!(
            "SELECT CAST({cnt} AS BIGINT) AS cnt, {cols} FROM powerset WHERE {keep}",
            cols = cols.join(", "),
            keep = keep.join(" AND "),
        ),
    }
}

/// The CUBE of `replaced` over `cols` with the distinct count of `primary` (and of
/// `secondary`), as one plain GROUP BY per subset of the columns, glued with UNION ALL.
/// DataFusion's `GROUP BY CUBE` with two `count(DISTINCT …)` took seconds for a few
/// thousand rows (and gigabytes); a distinct count per subset is a small hash aggregate
/// over distinct pairs. Past 8 columns (256 subsets) the CUBE is used as it is.
fn powerset(cols: &[String], primary: &str, secondary: Option<&str>) -> String {
    let mut counts = vec![format!("count(DISTINCT {primary}) AS cnt_primary")];
    if let Some(s) = secondary {
        counts.push(format!("count(DISTINCT {s}) AS cnt_secondary"));
    }
    if cols.len() > 8 {
        return format!(
            "SELECT {}, {c} FROM replaced GROUP BY CUBE({c})",
            counts.join(", "),
            c = cols.join(", ")
        );
    }
    // How many distinct `id`s each value combination of `set` has.
    let distinct = |set: &[&String], id: &str, name: &str| -> String {
        if set.is_empty() {
            return format!(
                "SELECT count(*) AS {name} FROM (SELECT DISTINCT {id} FROM replaced WHERE {id} IS NOT NULL)"
            );
        }
        let g = set
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {g}, count(*) AS {name} FROM (SELECT DISTINCT {g}, {id} FROM replaced WHERE {id} IS NOT NULL) GROUP BY {g}"
        )
    };
    let mut parts = Vec::new();
    for mask in 0..(1u32 << cols.len()) {
        let set: Vec<&String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect();
        let mut select = vec!["p.cnt_primary".to_owned()];
        if secondary.is_some() {
            select.push("s.cnt_secondary".into());
        }
        for c in cols {
            if set.contains(&c) {
                select.push(format!("p.{c} AS {c}"));
            } else {
                select.push(format!("CAST(NULL AS VARCHAR) AS {c}"));
            }
        }
        let mut from = format!("({}) AS p", distinct(&set, primary, "cnt_primary"));
        if let Some(sid) = secondary {
            let on = if set.is_empty() {
                "true".to_owned()
            } else {
                set.iter()
                    .map(|c| format!("p.{c} = s.{c}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            from.push_str(&format!(
                " INNER JOIN ({}) AS s ON {on}",
                distinct(&set, sid, "cnt_secondary")
            ));
        }
        parts.push(format!("SELECT {} FROM {from}", select.join(", ")));
    }
    parts.join(" UNION ALL ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_in_cumulus_library_form_reads_and_gives_one_cube() {
        let w = Workflow::parse(
            r#"
config_type = "counts"
[tables.count_x]
source_table = "core__encounter"
table_cols = [["period_start_month", "date"], "class_display"]
secondary_id = "encounter_ref"
filter_cols = [{ name = "status", values = ["finished"], include_nulls = false }]
"#,
            Path::new("w.toml"),
        )
        .unwrap();
        let q = query(&w.tables["count_x"], 10).inline();
        // Every subset of the two columns: both, each alone, neither.
        assert_eq!(q.matches("SELECT p.cnt_primary").count(), 4, "{q}");
        assert!(
            q.contains("GROUP BY period_start_month, class_display"),
            "{q}"
        );
        assert!(q.contains("WHERE (p.status IN ('finished'))"), "{q}");
        assert!(
            q.contains("cnt_primary >= 10 AND cnt_secondary >= 10"),
            "{q}"
        );
        assert!(q.contains("CAST(cnt_secondary AS BIGINT) AS cnt"), "{q}");
    }
}
