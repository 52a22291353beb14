//! A study is data: a folder with a `manifest.toml`, SQL files and counts workflows. The
//! manifest names the study's prefix (every table it makes is `<prefix>__<name>`), the source
//! tables it reads with the FHIR fields it needs from each (what a site lacks reads as
//! NULL), and its stages: ordered actions that build tables or say which tables may be
//! exported. `core` and `discovery` are compiled in; `--study-dir` adds a site's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::LibraryError;

/// The built-in studies: (name, [(file, text)]).
const BUILTIN: &[(&str, &[(&str, &str)])] = &[
    (
        "core",
        &[
            (
                "manifest.toml",
                include_str!("../studies/core/manifest.toml"),
            ),
            ("setup.sql", include_str!("../studies/core/setup.sql")),
            ("patient.sql", include_str!("../studies/core/patient.sql")),
            (
                "encounter.sql",
                include_str!("../studies/core/encounter.sql"),
            ),
            (
                "condition.sql",
                include_str!("../studies/core/condition.sql"),
            ),
            (
                "documentreference.sql",
                include_str!("../studies/core/documentreference.sql"),
            ),
            (
                "observation.sql",
                include_str!("../studies/core/observation.sql"),
            ),
            (
                "medicationrequest.sql",
                include_str!("../studies/core/medicationrequest.sql"),
            ),
            (
                "procedure.sql",
                include_str!("../studies/core/procedure.sql"),
            ),
            (
                "allergyintolerance.sql",
                include_str!("../studies/core/allergyintolerance.sql"),
            ),
            (
                "diagnosticreport.sql",
                include_str!("../studies/core/diagnosticreport.sql"),
            ),
            (
                "medicationdispense.sql",
                include_str!("../studies/core/medicationdispense.sql"),
            ),
            (
                "episodeofcare.sql",
                include_str!("../studies/core/episodeofcare.sql"),
            ),
            (
                "directory.sql",
                include_str!("../studies/core/directory.sql"),
            ),
            ("codes.toml", include_str!("../studies/core/codes.toml")),
            ("meta.sql", include_str!("../studies/core/meta.sql")),
            (
                "count_core.toml",
                include_str!("../studies/core/count_core.toml"),
            ),
        ],
    ),
    (
        "discovery",
        &[
            (
                "manifest.toml",
                include_str!("../studies/discovery/manifest.toml"),
            ),
            (
                "code_sources.toml",
                include_str!("../studies/discovery/code_sources.toml"),
            ),
        ],
    ),
];

/// Where a study's files are.
#[derive(Debug, Clone)]
enum Files {
    Builtin(&'static [(&'static str, &'static str)]),
    Folder(PathBuf),
}

/// A loaded study.
#[derive(Debug, Clone)]
pub struct Study {
    pub prefix: String,
    pub description: String,
    /// Source table → the dotted FHIR paths the study reads from it.
    pub sources: BTreeMap<String, Vec<String>>,
    /// The `default` stage's actions, in order.
    pub actions: Vec<Action>,
    /// Where it came from, for `library list`.
    pub origin: String,
    /// The code tables of each `codes` file, parsed once with the manifest.
    pub codes: BTreeMap<String, Vec<crate::codes::CodeTable>>,
    /// Each `code_sources` file, parsed once with the manifest.
    pub code_sources: BTreeMap<String, crate::code_sources::CodeSourcesFile>,
    files: Files,
}

/// One step of a stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// `build` (SQL files, statements in order), `codes` (code table files, see
    /// [`crate::codes`]), `code_sources` (see [`crate::code_sources`]), `counts` (workflow
    /// files), or
    /// `export:counts` / `export:flat` / `export:meta`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    /// For exports: table names (with or without the prefix).
    #[serde(default)]
    pub tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    study_prefix: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    sources: BTreeMap<String, Vec<String>>,
    stages: BTreeMap<String, Vec<Action>>,
}

impl Study {
    /// The built-in study `name`, if there is one.
    pub fn builtin(name: &str) -> Option<Study> {
        let (_, files) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        let text = files.iter().find(|(f, _)| *f == "manifest.toml")?.1;
        Study::parse(
            text,
            Path::new(name),
            Files::Builtin(files),
            "built in".into(),
        )
        .ok()
    }

    /// The study in `dir` (which holds its `manifest.toml`).
    pub fn load(dir: &Path) -> Result<Study, LibraryError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| LibraryError::io(&path, e))?;
        Study::parse(
            &text,
            &path,
            Files::Folder(dir.to_owned()),
            dir.display().to_string(),
        )
    }

    fn parse(text: &str, path: &Path, files: Files, origin: String) -> Result<Study, LibraryError> {
        let bad = |message: String| LibraryError::Manifest {
            path: path.to_owned(),
            message,
        };
        let m: Manifest = toml::from_str(text).map_err(|e| LibraryError::toml(path, text, &e))?;
        let prefix = m.study_prefix.to_lowercase();
        let valid = prefix
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(bad(format!(
                "study_prefix {prefix:?} must be a letter then letters, digits or _"
            )));
        }
        if m.stages.is_empty() {
            return Err(bad("the manifest has no stages".into()));
        }
        // `default`, or else every stage in order, as cumulus-library's `all`.
        let actions: Vec<Action> = match m.stages.get("default") {
            Some(a) => a.clone(),
            None => m.stages.values().flatten().cloned().collect(),
        };
        for a in &actions {
            let known = [
                "build",
                "codes",
                "code_sources",
                "counts",
                "export:counts",
                "export:flat",
                "export:meta",
            ];
            if !known.contains(&a.kind.as_str()) {
                return Err(bad(format!(
                    "unknown action type {:?} (known: {})",
                    a.kind,
                    known.join(", ")
                )));
            }
        }
        let mut study = Study {
            prefix,
            description: m.description,
            sources: m.sources,
            actions,
            origin,
            codes: BTreeMap::new(),
            code_sources: BTreeMap::new(),
            files,
        };
        // A code table's fields are read from its source without being listed twice.
        for f in study.files_of("codes") {
            let tables = crate::codes::CodesFile::parse(&study.read(&f)?, &study.path(&f))?.tables;
            for t in &tables {
                for p in t.source_paths() {
                    study.reads(&t.source, p);
                }
            }
            study.codes.insert(f, tables);
        }
        for f in study.files_of("code_sources") {
            let parsed =
                crate::code_sources::CodeSourcesFile::parse(&study.read(&f)?, &study.path(&f))?;
            for (source, p) in parsed.source_paths() {
                study.reads(&source, p);
            }
            study.code_sources.insert(f, parsed);
        }
        Ok(study)
    }

    /// Adds `path` to the fields read from `source`, once.
    fn reads(&mut self, source: &str, path: String) {
        let paths = self.sources.entry(source.to_owned()).or_default();
        if !paths.contains(&path) {
            paths.push(path);
        }
    }

    /// The files of every action of type `kind`, in order.
    fn files_of(&self, kind: &str) -> Vec<String> {
        self.actions
            .iter()
            .filter(|a| a.kind == kind)
            .flat_map(|a| a.files.iter().cloned())
            .collect()
    }

    /// Where one of the study's files is, for messages: its path in a study folder, or
    /// `<prefix>/<file>` for a built-in study.
    pub fn path(&self, file: &str) -> PathBuf {
        match &self.files {
            Files::Builtin(_) => Path::new(&self.prefix).join(file),
            Files::Folder(dir) => dir.join(file),
        }
    }

    /// The text of one of the study's files.
    pub fn read(&self, file: &str) -> Result<String, LibraryError> {
        match &self.files {
            Files::Builtin(files) => files
                .iter()
                .find(|(f, _)| *f == file)
                .map(|(_, t)| (*t).to_owned())
                .ok_or_else(|| LibraryError::Usage(format!("{}: no file {file}", self.prefix))),
            Files::Folder(dir) => {
                let path = dir.join(file);
                std::fs::read_to_string(&path).map_err(|e| LibraryError::io(&path, e))
            }
        }
    }

    /// The study named `name`: a `--study-dir` study wins over a built-in one with the same
    /// prefix, as in cumulus-library.
    pub fn find(name: &str, study_dirs: &[PathBuf]) -> Result<Study, LibraryError> {
        let mut all = Study::all(study_dirs)?;
        if let Some(i) = all.iter().rposition(|s| s.prefix == name) {
            return Ok(all.swap_remove(i));
        }
        let known: Vec<String> = all.into_iter().map(|s| s.prefix).collect();
        Err(LibraryError::Usage(format!(
            "no study {name:?} (known: {}; a study folder holds a manifest.toml and is added with --study-dir)",
            known.join(", ")
        )))
    }

    /// Every study: the built-in ones, then those found (recursively) under `study_dirs`.
    pub fn all(study_dirs: &[PathBuf]) -> Result<Vec<Study>, LibraryError> {
        let mut out: Vec<Study> = BUILTIN
            .iter()
            .filter_map(|(n, _)| Study::builtin(n))
            .collect();
        for dir in study_dirs {
            let mut found = Vec::new();
            find_manifests(dir, &mut found)?;
            found.sort();
            for d in found {
                out.push(Study::load(&d)?);
            }
        }
        Ok(out)
    }

    /// Exportable tables, with the kind each is exported as (`cube`, `flat`, `meta`).
    pub fn exports(&self) -> Result<Vec<(String, &'static str)>, LibraryError> {
        let mut out = Vec::new();
        for a in &self.actions {
            let kind = match a.kind.as_str() {
                "export:counts" => "cube",
                "export:flat" => "flat",
                "export:meta" => "meta",
                _ => continue,
            };
            for t in &a.tables {
                out.push((self.table_name(t), kind));
            }
            for f in &a.files {
                for t in crate::counts::Workflow::parse(&self.read(f)?, &self.path(f))?
                    .tables
                    .keys()
                {
                    out.push((self.table_name(t), kind));
                }
            }
        }
        Ok(out)
    }

    /// `name` with the study's prefix, added if missing.
    pub fn table_name(&self, name: &str) -> String {
        let p = format!("{}__", self.prefix);
        if name.starts_with(&p) {
            name.to_owned()
        } else {
            format!("{p}{name}")
        }
    }
}

fn find_manifests(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LibraryError> {
    if dir.join("manifest.toml").is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| LibraryError::io(dir, e))?;
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_manifests(&e.path(), out)?;
        }
    }
    Ok(())
}
