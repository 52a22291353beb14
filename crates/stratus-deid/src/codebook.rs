//! The PHI folder holds the site's secret salt (`codebook.json`) and the real-to-fake id
//! mappings of Patients and Encounters (`codebook-cached-mappings.json`), the files
//! cumulus-etl keeps, in the same formats: a site's existing PHI folder gives the same fake
//! ids here as there.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use stratus_fhir::writer::AtomicFile;

#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Codebook { path: PathBuf, message: String },
    #[error("{0}")]
    Rules(String),
}

fn io(path: &Path, source: std::io::Error) -> DeidError {
    DeidError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub const CODEBOOK: &str = "codebook.json";
pub const CACHED: &str = "codebook-cached-mappings.json";

#[derive(Debug, Default)]
struct Mappings {
    patient: HashMap<String, String>,
    encounter: HashMap<String, String>,
}

/// The cached mappings, kept small: a cached fake id is always the keyed hash of its real
/// id, so only the real ids are held (a few dozen bytes each, not the pair's hundred and
/// more) and the hashes are recomputed when the file is written. A pair read from the file
/// whose fake id is not that hash (written under another salt, or by hand) is kept as is.
#[derive(Debug, Default)]
struct Cached {
    patient: HashSet<Box<str>>,
    encounter: HashSet<Box<str>>,
    other: Mappings,
}

/// The salt and the id mappings of one PHI folder.
#[derive(Debug)]
pub struct Codebook {
    dir: PathBuf,
    codebook_id: String,
    /// HMAC-SHA256 keyed with the salt, its pads already absorbed: each id then costs two
    /// SHA-256 blocks (SHA-NI where the CPU has it).
    mac: Hmac<Sha256>,
    /// Fake ids left by old versions (random UUIDs), which win over the hash.
    legacy: Mappings,
    cached: RwLock<Cached>,
    dirty: AtomicBool,
    /// Other keys of codebook.json, written back as they were.
    extra: Map<String, Value>,
}

impl Codebook {
    /// Opens the PHI folder, creating it and a new salt if needed.
    pub fn open(dir: &Path) -> Result<Codebook, DeidError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(CODEBOOK);
        let bad = |message: String| DeidError::Codebook {
            path: path.clone(),
            message,
        };
        let mut doc: Map<String, Value> = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(bad("not a JSON object".into())),
                Err(e) => return Err(bad(format!("not JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(io(&path, e)),
        };
        let mut legacy = Mappings::default();
        let version = doc.get("version").and_then(Value::as_u64).unwrap_or(0);
        match version {
            0 => {
                // {"mrn": {pid: {"deid": fake, "encounter": {eid: {"deid": fake}}}}}
                if let Some(Value::Object(mrn)) = doc.remove("mrn") {
                    for (pid, p) in mrn {
                        if let Some(f) = p.get("deid").and_then(Value::as_str) {
                            legacy.patient.insert(pid.clone(), f.to_owned());
                        }
                        for (eid, e) in p
                            .get("encounter")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(f) = e.get("deid").and_then(Value::as_str) {
                                legacy.encounter.insert(eid.clone(), f.to_owned());
                            }
                        }
                    }
                }
            }
            1 => {}
            v => return Err(bad(format!("codebook version {v} is not supported"))),
        }
        for (key, slot) in [
            ("Patient", &mut legacy.patient),
            ("Encounter", &mut legacy.encounter),
        ] {
            if let Some(Value::Object(m)) = doc.get(key) {
                for (real, fake) in m {
                    if let Some(f) = fake.as_str() {
                        slot.insert(real.clone(), f.to_owned());
                    }
                }
            }
        }
        let mut changed = version != 1;
        let codebook_id = match doc.get("codebook_id").and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => {
                changed = true;
                uuid4()
            }
        };
        let salt = match doc.get("id_salt").and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => {
                changed = true;
                hex(&random_bytes(32))
            }
        };
        let key = unhex(&salt).ok_or_else(|| bad("id_salt is not hexadecimal".into()))?;
        doc.remove("version");
        doc.remove("codebook_id");
        doc.remove("id_salt");
        let book = Codebook {
            dir: dir.to_path_buf(),
            codebook_id,
            mac: Hmac::<Sha256>::new_from_slice(&key)
                .map_err(|_| bad("id_salt cannot key HMAC".into()))?,
            legacy,
            cached: RwLock::new(Cached::default()),
            dirty: AtomicBool::new(false),
            extra: doc,
        };
        let cached = book.read_cached(&dir.join(CACHED))?;
        *book.cached.write().unwrap_or_else(|p| p.into_inner()) = cached;
        if changed {
            book.write_codebook(&salt)?;
        }
        Ok(book)
    }

    pub fn codebook_id(&self) -> &str {
        &self.codebook_id
    }

    /// The fake id of `id`: the legacy mapping for Patients and Encounters if there is
    /// one, else hex(HMAC-SHA256(salt, id)). With `cache`, Patient and Encounter mappings
    /// are remembered in `codebook-cached-mappings.json`.
    pub fn fake_id(&self, resource_type: &str, id: &str, cache: bool) -> String {
        let legacy = match resource_type {
            "Patient" => self.legacy.patient.get(id),
            "Encounter" => self.legacy.encounter.get(id),
            _ => None,
        };
        if let Some(f) = legacy {
            return f.clone();
        }
        let fake = self.hash(id);
        if cache && matches!(resource_type, "Patient" | "Encounter") {
            let patient = resource_type == "Patient";
            // Nearly every call finds the id cached already (each resource refers to its
            // patient and encounter): a shared read lock is enough for those.
            let known = |c: &Cached| {
                let (ids, other) = if patient {
                    (&c.patient, &c.other.patient)
                } else {
                    (&c.encounter, &c.other.encounter)
                };
                ids.contains(id) || other.contains_key(id)
            };
            if !known(&self.cached.read().unwrap_or_else(|p| p.into_inner())) {
                let mut c = self.cached.write().unwrap_or_else(|p| p.into_inner());
                if !known(&c) {
                    if patient {
                        &mut c.patient
                    } else {
                        &mut c.encounter
                    }
                    .insert(id.into());
                    self.dirty.store(true, Ordering::Relaxed);
                }
            }
        }
        fake
    }

    /// hex(HMAC-SHA256(salt, id)): the same for every resource type.
    pub fn hash(&self, id: &str) -> String {
        let mut m = self.mac.clone();
        m.update(id.as_bytes());
        hex(&m.finalize().into_bytes())
    }

    /// Writes the cached mappings if they changed. Called at the end of each task rather
    /// than before each batch as cumulus-etl does: rewriting a file of millions of ids per
    /// batch made long runs quadratic, and nothing is lost by waiting, since a rerun after a
    /// crash computes the same fake ids and caches them again.
    pub fn save(&self) -> Result<(), DeidError> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let c = self.cached.read().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(CACHED);
        let file = AtomicFile::create(&path).map_err(|e| DeidError::Codebook {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut w = std::io::BufWriter::new(file);
        let mut write = || -> std::io::Result<()> {
            w.write_all(b"{")?;
            for (n, (key, ids, other)) in [
                ("Encounter", &c.encounter, &c.other.encounter),
                ("Patient", &c.patient, &c.other.patient),
            ]
            .into_iter()
            .enumerate()
            {
                if n > 0 {
                    w.write_all(b",")?;
                }
                write!(w, "\"{key}\":{{")?;
                let mut all: Vec<(&str, Option<&str>)> = ids
                    .iter()
                    .map(|i| (&**i, None))
                    .chain(other.iter().map(|(r, f)| (r.as_str(), Some(f.as_str()))))
                    .collect();
                all.sort_unstable();
                for (i, (real, fake)) in all.into_iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    let fake = fake.map_or_else(|| self.hash(real), str::to_owned);
                    serde_json::to_writer(&mut w, real)?;
                    w.write_all(b":")?;
                    serde_json::to_writer(&mut w, &fake)?;
                }
                w.write_all(b"}")?;
            }
            w.write_all(b"}")
        };
        write().map_err(|e| io(&path, e))?;
        let file = w.into_inner().map_err(|e| io(&path, e.into_error()))?;
        file.commit().map_err(|e| DeidError::Codebook {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    fn write_codebook(&self, salt: &str) -> Result<(), DeidError> {
        // The layout Python's json.dumps gives, so the file diffs cleanly against
        // cumulus-etl's.
        let mut text = format!(
            "{{\"version\": 1, \"codebook_id\": {}, \"id_salt\": {}",
            Value::String(self.codebook_id.clone()),
            Value::String(salt.to_owned())
        );
        for (k, v) in &self.extra {
            text.push_str(&format!(", {}: {}", Value::String(k.clone()), v));
        }
        for (k, m) in [
            ("Patient", &self.legacy.patient),
            ("Encounter", &self.legacy.encounter),
        ] {
            if !m.is_empty() && !self.extra.contains_key(k) {
                let obj: Map<String, Value> = m
                    .iter()
                    .map(|(r, f)| (r.clone(), Value::String(f.clone())))
                    .collect();
                text.push_str(&format!(", \"{k}\": {}", Value::Object(obj)));
            }
        }
        text.push('}');
        write_atomic(&self.dir.join(CODEBOOK), text.as_bytes())
    }
}

impl Codebook {
    /// Reads `codebook-cached-mappings.json` into the compact form.
    fn read_cached(&self, path: &Path) -> Result<Cached, DeidError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cached::default()),
            Err(e) => return Err(io(path, e)),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| DeidError::Codebook {
            path: path.to_path_buf(),
            message: format!("not JSON: {e}"),
        })?;
        drop(text);
        let mut c = Cached::default();
        for (key, ids, other) in [
            ("Patient", &mut c.patient, &mut c.other.patient),
            ("Encounter", &mut c.encounter, &mut c.other.encounter),
        ] {
            for (r, f) in v.get(key).and_then(Value::as_object).into_iter().flatten() {
                if let Some(f) = f.as_str() {
                    if self.hash(r) == f {
                        ids.insert(r.as_str().into());
                    } else {
                        other.insert(r.clone(), f.to_owned());
                    }
                }
            }
        }
        Ok(c)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DeidError> {
    let mut f = AtomicFile::create(path).map_err(|e| DeidError::Codebook {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.commit().map_err(|e| DeidError::Codebook {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(())
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    b
}

fn uuid4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_codebook_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = Codebook::open(dir.path()).unwrap();
        let id = a.codebook_id().to_owned();
        assert_eq!(id.len(), 36);
        let fake = a.fake_id("Patient", "pat1", true);
        assert_eq!(fake.len(), 64);
        a.save().unwrap();
        let b = Codebook::open(dir.path()).unwrap();
        assert_eq!(b.codebook_id(), id);
        assert_eq!(
            b.fake_id("Condition", "pat1", false),
            fake,
            "one hash for every type"
        );
        let cached: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(CACHED)).unwrap())
                .unwrap();
        assert_eq!(cached["Patient"]["pat1"], fake.as_str());
        let text = std::fs::read_to_string(dir.path().join(CODEBOOK)).unwrap();
        assert!(
            text.starts_with("{\"version\": 1, \"codebook_id\": \""),
            "{text}"
        );
    }

    #[test]
    fn cached_mappings_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = Codebook::open(dir.path()).unwrap();
        let fake = a.fake_id("Encounter", "e\"1", true);
        // A pair that is not this salt's hash (hand-edited, say) is kept as it was.
        std::fs::write(
            dir.path().join(CACHED),
            format!(r#"{{"Encounter": {{"e\"1": "{fake}", "odd": "x"}}, "Patient": {{}}}}"#),
        )
        .unwrap();
        let b = Codebook::open(dir.path()).unwrap();
        b.fake_id("Patient", "p1", true);
        b.fake_id("Encounter", "e\"1", true);
        b.save().unwrap();
        let cached: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(CACHED)).unwrap())
                .unwrap();
        assert_eq!(cached["Encounter"]["e\"1"], fake.as_str());
        assert_eq!(cached["Encounter"]["odd"], "x");
        assert_eq!(cached["Patient"]["p1"], b.hash("p1").as_str());
        assert_eq!(cached["Patient"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn known_salt_and_legacy_maps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CODEBOOK),
            r#"{"version": 1, "codebook_id": "x", "id_salt": "31323334", "Patient": {"p1": "legacy-fake"}}"#,
        )
        .unwrap();
        let c = Codebook::open(dir.path()).unwrap();
        assert_eq!(c.fake_id("Patient", "p1", true), "legacy-fake");
        // HMAC-SHA256(key unhex("31323334"), "a"), computed with Python's hmac module.
        assert_eq!(
            c.hash("a"),
            "0992cad6e4fd15d312d2e41743d0189e87588624df57f03b0c3a3376ab5c7a26"
        );
        assert!(Codebook::open(dir.path()).is_ok());
    }
}
