//! Code-source tables: which code systems and codes each coded field of the raw tables
//! holds, the shape of cumulus-library's `discovery__code_sources`. A study lists the fields
//! in a `code_sources` file, one short entry each, and the SQL that finds their codes is
//! made here, so adding a field is one entry rather than another copy of the unnesting.
//!
//! ```toml
//! table = "code_sources"            # the table made; the study's prefix is added
//!
//! [[field]]
//! source = "medicationrequest"
//! field = "dosageInstruction[].route"   # a CodeableConcept; `[]` marks a list on the way
//!
//! [[field]]
//! source = "encounter"
//! field = "class"
//! coding = true                     # the field is a Coding, not a CodeableConcept
//! column = "class"                  # the `column_name` written (default: the path
//!                                   # without `[]`, lower-cased)
//! ```
//!
//! The table has the columns `table_name`, `column_name`, `code`, `display`, `system`: one
//! row per distinct coding found, and for a field with no coding at all, one row with empty
//! strings, so a reader can tell "looked, found nothing" from "never looked".

use std::path::Path;

use serde::Deserialize;

use crate::LibraryError;
use crate::codes::{Segment, plain, segments};

/// A `code_sources` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSourcesFile {
    pub table: String,
    #[serde(rename = "field", default)]
    pub fields: Vec<CodedField>,
}

/// One coded field to look in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodedField {
    pub source: String,
    pub field: String,
    /// The field is a Coding (`Encounter.class`) rather than a CodeableConcept.
    #[serde(default)]
    pub coding: bool,
    #[serde(default)]
    pub column: Option<String>,
}

impl CodeSourcesFile {
    pub fn parse(text: &str, file: &Path) -> Result<CodeSourcesFile, LibraryError> {
        let f: CodeSourcesFile =
            toml::from_str(text).map_err(|e| LibraryError::toml(file, text, &e))?;
        let bad = |message: String| LibraryError::Manifest {
            path: file.into(),
            message,
        };
        if !plain(&f.table) {
            return Err(bad(format!("table {:?}: not a plain name", f.table)));
        }
        for c in &f.fields {
            if !plain(&c.source) {
                return Err(bad(format!("source {:?}: not a plain name", c.source)));
            }
            segments(&c.field).map_err(bad)?;
            // The column name is written as a SQL string.
            if c.column().contains('\'') {
                return Err(bad(format!("column {:?}: no quotes", c.column())));
            }
        }
        Ok(f)
    }

    /// The statements that make `table` (the prefixed name): the codings found, into a
    /// working table `<table>_tmp_found` that the build drops, then the table itself with
    /// an empty row for each field that had none. The found rows are stored first so each
    /// field's unnesting runs once, not again to ask whether it found anything.
    pub fn sql(&self, table: &str) -> Vec<String> {
        let found = format!("{table}_tmp_found");
        let arms: Vec<String> = self.fields.iter().filter_map(CodedField::query).collect();
        let found_sql = if arms.is_empty() {
            format!(
                "CREATE TABLE {found} AS SELECT CAST(NULL AS VARCHAR) AS table_name, \
                 CAST(NULL AS VARCHAR) AS column_name, CAST(NULL AS VARCHAR) AS code, \
                 CAST(NULL AS VARCHAR) AS display, CAST(NULL AS VARCHAR) AS system WHERE false"
            )
        } else {
            format!("CREATE TABLE {found} AS {}", arms.join(" UNION ALL "))
        };
        let mut looked: Vec<String> = self
            .fields
            .iter()
            .map(|c| format!("('{}', '{}')", c.source, c.column()))
            .collect();
        looked.dedup();
        let empty = if looked.is_empty() {
            String::new()
        } else {
            format!(
                " UNION ALL SELECT f.table_name, f.column_name, '', '', '' \
                 FROM (VALUES {}) AS f(table_name, column_name) \
                 LEFT JOIN (SELECT DISTINCT table_name, column_name FROM {found}) AS x \
                 ON x.table_name = f.table_name AND x.column_name = f.column_name \
                 WHERE x.table_name IS NULL",
                looked.join(", ")
            )
        };
        vec![
            found_sql,
            format!(
                "CREATE TABLE {table} AS SELECT table_name, column_name, code, display, system \
                 FROM (SELECT table_name, column_name, code, display, system FROM {found}{empty}) \
                 ORDER BY table_name, column_name, code, system, display"
            ),
        ]
    }

    /// Every source table's dotted FHIR paths read, for the study's source schema.
    pub fn source_paths(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|c| {
                let path = c.field.replace("[]", "");
                let tail = if c.coding { "code" } else { "coding.code" };
                (c.source.clone(), format!("{path}.{tail}"))
            })
            .collect()
    }
}

impl CodedField {
    /// The `column_name` written for this field.
    pub fn column(&self) -> String {
        self.column
            .clone()
            .unwrap_or_else(|| self.field.replace("[]", "").to_lowercase())
    }

    /// The distinct codings of this field, as a SELECT of the table's five columns.
    fn query(&self) -> Option<String> {
        let segs: Vec<Segment> = segments(&self.field).ok()?;
        // Step by step down the path: each step's value is `v`, a list unnested on the way.
        let mut from = self.source.clone();
        for (i, s) in segs.iter().enumerate() {
            let read = if i == 0 {
                format!("\"{}\"", s.name)
            } else {
                format!("v['{}']", s.name)
            };
            let value = if s.list {
                format!("unnest({read})")
            } else {
                read.clone()
            };
            let present = if i == 0 { read } else { "v".into() };
            from = format!("(SELECT {value} AS v FROM {from} WHERE {present} IS NOT NULL)");
        }
        let codings = if self.coding {
            format!("SELECT v AS c FROM {from} WHERE v IS NOT NULL")
        } else {
            format!("SELECT unnest(v['coding']) AS c FROM {from} WHERE v IS NOT NULL")
        };
        Some(format!(
            "SELECT DISTINCT CAST('{}' AS VARCHAR) AS table_name, CAST('{}' AS VARCHAR) AS column_name, \
             coalesce(c['code'], '') AS code, coalesce(c['display'], '') AS display, \
             coalesce(c['system'], '') AS system FROM ({codings}) WHERE c IS NOT NULL",
            self.source,
            self.column()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_one_arm_each_and_an_empty_row_when_nothing_is_found() {
        let f = CodeSourcesFile::parse(
            "table = \"code_sources\"\n\
             [[field]]\nsource = \"encounter\"\nfield = \"class\"\ncoding = true\n\
             [[field]]\nsource = \"procedure\"\nfield = \"focalDevice[].action\"\ncolumn = \"focalDevice.action\"\n\
             [[field]]\nsource = \"encounter\"\nfield = \"hospitalization.dischargeDisposition\"\n",
            Path::new("code_sources.toml"),
        )
        .unwrap();
        let sql = f.sql("discovery__code_sources");
        assert_eq!(sql.len(), 2);
        assert_eq!(sql[0].matches(" UNION ALL ").count(), 2);
        assert!(sql[0].contains("'hospitalization.dischargedisposition'"));
        assert!(sql[0].contains("unnest(\"focalDevice\")"));
        assert!(sql[1].contains("('procedure', 'focalDevice.action')"));
        assert_eq!(
            f.source_paths()[1],
            ("procedure".into(), "focalDevice.action.coding.code".into())
        );
        assert_eq!(f.source_paths()[0].1, "class.code");
    }

    #[test]
    fn bad_entries_name_the_file_and_the_field() {
        let typo = "table = \"t\"\n[[field]]\nsource = \"s\"\nfeld = \"code\"\n";
        let err = CodeSourcesFile::parse(typo, Path::new("d/code_sources.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("d/code_sources.toml: line 4"), "{err}");
        let bad = "table = \"t\"\n[[field]]\nsource = \"s\"\nfield = \"a..b\"\n";
        assert!(CodeSourcesFile::parse(bad, Path::new("x.toml")).is_err());
    }
}
