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
/// The folder of the real ids cached since the last save, a file per type (see
/// [`Cached`]); removed by the save.
const NEW_IDS: &str = ".stratus-cached-ids.tmp";

#[derive(Debug, Default)]
struct Mappings {
    patient: HashMap<String, String>,
    encounter: HashMap<String, String>,
}

/// The cached mappings, kept small whatever their number. A cached fake id is always the
/// keyed hash of its real id, so memory holds only a 16-byte fingerprint of each (the first
/// half of that hash, computed anyway) to know what is cached already; the real ids added
/// since the last save wait in scratch files in the PHI folder (they are PHI), and the
/// file already on disk is streamed, never loaded.
#[derive(Debug, Default)]
struct Cached {
    encounter: CachedType,
    patient: CachedType,
}

/// What is cached of one type.
#[derive(Debug, Default)]
struct CachedType {
    prints: HashSet<u128>,
    /// Pairs read from the file whose fake id is not this salt's hash (written under another
    /// salt, or by hand): kept as they are.
    other: HashMap<String, String>,
    /// The real ids cached since the last save, one JSON string a line, in `NEW_IDS/<type>`.
    new: Option<std::io::BufWriter<std::fs::File>>,
}

impl Cached {
    fn of(&self, resource_type: &str) -> Option<&CachedType> {
        match resource_type {
            "Encounter" => Some(&self.encounter),
            "Patient" => Some(&self.patient),
            _ => None,
        }
    }

    fn of_mut(&mut self, resource_type: &str) -> Option<&mut CachedType> {
        match resource_type {
            "Encounter" => Some(&mut self.encounter),
            "Patient" => Some(&mut self.patient),
            _ => None,
        }
    }
}

impl CachedType {
    fn knows(&self, print: u128, id: &str) -> bool {
        self.prints.contains(&print) || (!self.other.is_empty() && self.other.contains_key(id))
    }
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
    /// A new id could not be written to the scratch file; the next save says so.
    lost: AtomicBool,
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
            lost: AtomicBool::new(false),
            extra: doc,
        };
        // Ids a crashed run noted and never saved: the rerun notes them again.
        remove_scratch(&dir.join(NEW_IDS))?;
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
        let mac = self.mac(id);
        if cache && matches!(resource_type, "Patient" | "Encounter") {
            let print = fingerprint(&mac);
            // Nearly every call finds the id cached already (each resource refers to its
            // patient and encounter): a shared read lock is enough for those.
            let cached = self.cached.read().unwrap_or_else(|p| p.into_inner());
            let known = cached.of(resource_type).is_none_or(|t| t.knows(print, id));
            drop(cached);
            if !known {
                let mut c = self.cached.write().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = c.of_mut(resource_type)
                    && !t.knows(print, id)
                {
                    if let Err(e) = self.remember(t, resource_type, id) {
                        // The fake id is right either way; only the mapping file would miss
                        // this id, so say so and go on rather than fail the resource.
                        tracing::error!(
                            "cannot note a cached mapping in {}: {e}",
                            self.dir.display()
                        );
                        self.lost.store(true, Ordering::Relaxed);
                    }
                    t.prints.insert(print);
                }
            }
        }
        hex(&mac)
    }

    /// Appends a newly cached real id to its type's scratch file, opening it on first use.
    fn remember(&self, t: &mut CachedType, resource_type: &str, id: &str) -> std::io::Result<()> {
        if t.new.is_none() {
            let dir = self.dir.join(NEW_IDS);
            std::fs::create_dir_all(&dir)?;
            let f = std::fs::File::create(dir.join(resource_type))?;
            t.new = Some(std::io::BufWriter::with_capacity(1 << 16, f));
        }
        if let Some(w) = t.new.as_mut() {
            serde_json::to_writer(&mut *w, id)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// hex(HMAC-SHA256(salt, id)): the same for every resource type.
    pub fn hash(&self, id: &str) -> String {
        hex(&self.mac(id))
    }

    fn mac(&self, id: &str) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(id.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Writes the cached mappings if new ones came. Called at the end of each task rather
    /// than before each batch as cumulus-etl does: rewriting a file of millions of ids per
    /// batch made long runs quadratic, and nothing is lost by waiting, since a rerun after a
    /// crash computes the same fake ids and caches them again. The file is rewritten by
    /// streaming: the pairs already there in their order, then the new ones in the order
    /// they came, as cumulus-etl's insertion-ordered dictionaries do.
    pub fn save(&self) -> Result<(), DeidError> {
        let mut guard = self.cached.write().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        let scratch = self.dir.join(NEW_IDS);
        let mut any = false;
        for t in [&mut c.encounter, &mut c.patient] {
            if let Some(mut w) = t.new.take() {
                w.flush().map_err(|e| io(&scratch, e))?;
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        let path = self.dir.join(CACHED);
        let file = AtomicFile::create(&path).map_err(|e| DeidError::Codebook {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        let wrote = |e| io(&path, e);
        let mut top = Commas::default();
        let mut pairs = Commas::default();
        let mut done: Vec<String> = Vec::new();
        // The old pairs in file order, each type followed by its new ids.
        w.write_all(b"{").map_err(wrote)?;
        stream_cached(&path, &mut |ev| match ev {
            Event::Begin(key) => {
                pairs = Commas::default();
                top.next(&mut w).map_err(wrote)?;
                write!(w, "{}:{{", Value::String(key.to_owned())).map_err(wrote)
            }
            Event::Pair(_, real, fake) => pairs
                .next(&mut w)
                .and_then(|()| write_pair(&mut w, real, fake))
                .map_err(wrote),
            Event::End(key) => {
                done.push(key.to_owned());
                self.append_new(&mut w, &scratch.join(key), &mut pairs, &path)?;
                w.write_all(b"}").map_err(wrote)
            }
        })?;
        for key in ["Encounter", "Patient"] {
            if !done.iter().any(|d| d == key) {
                top.next(&mut w).map_err(wrote)?;
                write!(w, "\"{key}\":{{").map_err(wrote)?;
                self.append_new(&mut w, &scratch.join(key), &mut Commas::default(), &path)?;
                w.write_all(b"}").map_err(wrote)?;
            }
        }
        w.write_all(b"}").map_err(wrote)?;
        let file = w.into_inner().map_err(|e| io(&path, e.into_error()))?;
        file.commit().map_err(|e| DeidError::Codebook {
            path: path.clone(),
            message: e.to_string(),
        })?;
        remove_scratch(&scratch)?;
        if self.lost.swap(false, Ordering::Relaxed) {
            return Err(DeidError::Codebook {
                path,
                message: "some cached mappings could not be noted (see the errors above); \
                          rerun to add them"
                    .into(),
            });
        }
        Ok(())
    }

    /// Writes the pairs of the ids in one scratch file (none if it is missing) to `w`, which
    /// is writing `out`.
    fn append_new(
        &self,
        w: &mut dyn Write,
        scratch: &Path,
        pairs: &mut Commas,
        out: &Path,
    ) -> Result<(), DeidError> {
        let f = match std::fs::File::open(scratch) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(scratch, e)),
        };
        for line in std::io::BufRead::lines(std::io::BufReader::new(f)) {
            let line = line.map_err(|e| io(scratch, e))?;
            let Ok(real) = serde_json::from_str::<String>(&line) else {
                continue; // a torn last line
            };
            pairs
                .next(w)
                .and_then(|()| write_pair(w, &real, &self.hash(&real)))
                .map_err(|e| io(out, e))?;
        }
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
    /// Reads `codebook-cached-mappings.json` into the compact form, streaming.
    fn read_cached(&self, path: &Path) -> Result<Cached, DeidError> {
        let mut c = Cached::default();
        stream_cached(path, &mut |ev| {
            if let Event::Pair(key, real, fake) = ev
                && let Some(t) = c.of_mut(key)
            {
                let mac = self.mac(real);
                if hex(&mac) == fake {
                    t.prints.insert(fingerprint(&mac));
                } else {
                    t.other.insert(real.to_owned(), fake.to_owned());
                }
            }
            Ok(())
        })?;
        Ok(c)
    }
}

/// Removes the scratch folder of new ids, if there is one.
fn remove_scratch(dir: &Path) -> Result<(), DeidError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir, e)),
        _ => Ok(()),
    }
}

/// Writes the commas between the members of a JSON object.
#[derive(Default)]
struct Commas(bool);

impl Commas {
    /// Before each member: a comma unless it is the first.
    fn next(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        if std::mem::replace(&mut self.0, true) {
            w.write_all(b",")?;
        }
        Ok(())
    }
}

/// The first 16 bytes of an id's HMAC: what the cache remembers it by. (Telling two ids
/// apart by 128 bits of a keyed hash never fails in practice.)
fn fingerprint(mac: &[u8; 32]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&mac[..16]);
    u128::from_le_bytes(b)
}

fn write_pair(w: &mut dyn Write, real: &str, fake: &str) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, real)?;
    w.write_all(b":")?;
    serde_json::to_writer(&mut *w, fake)?;
    Ok(())
}

/// What [`stream_cached`] finds, in file order.
enum Event<'a> {
    /// A top-level key (`"Encounter"`) opens its object.
    Begin(&'a str),
    /// A `real: fake` pair inside it (values that are not strings are skipped).
    Pair(&'a str, &'a str, &'a str),
    End(&'a str),
}

type Sink<'s> = dyn FnMut(Event<'_>) -> Result<(), DeidError> + 's;

/// Streams `{"Encounter": {real: fake, ...}, "Patient": {...}}` without holding it: the file
/// grows with every patient and encounter a site has ever had. A missing file is empty. The
/// first error of `sink` stops the stream and is returned as it was.
fn stream_cached(path: &Path, sink: &mut Sink<'_>) -> Result<(), DeidError> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, Visitor};

    /// The sink, and its first error (serde's errors carry only a message).
    struct Out<'a, 's> {
        sink: &'a mut Sink<'s>,
        failed: Option<DeidError>,
    }
    impl Out<'_, '_> {
        fn send<E: Error>(&mut self, ev: Event<'_>) -> Result<(), E> {
            (self.sink)(ev).map_err(|e| {
                let message = e.to_string();
                self.failed = Some(e);
                E::custom(message)
            })
        }
    }
    struct Top<'a, 'b, 's>(&'a mut Out<'b, 's>);
    struct Inner<'a, 'b, 's> {
        key: &'a str,
        out: &'a mut Out<'b, 's>,
    }
    impl<'de> Visitor<'de> for Top<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of objects")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                map.next_value_seed(Inner {
                    key: &key,
                    out: &mut *self.0,
                })?;
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Inner<'_, '_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Inner<'_, '_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of real id to fake id")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            self.out.send(Event::Begin(self.key))?;
            while let Some((real, fake)) = map.next_entry::<String, Value>()? {
                if let Some(fake) = fake.as_str() {
                    self.out.send(Event::Pair(self.key, &real, fake))?;
                }
            }
            self.out.send(Event::End(self.key))
        }
    }

    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, e)),
    };
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, file));
    let mut out = Out { sink, failed: None };
    let parsed = de.deserialize_map(Top(&mut out)).and_then(|()| de.end());
    match (out.failed, parsed) {
        (Some(e), _) => Err(e),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(DeidError::Codebook {
            path: path.to_path_buf(),
            message: format!("not the expected JSON: {e}"),
        }),
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
    fn saves_stream_the_old_pairs_then_the_new_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = Codebook::open(dir.path()).unwrap();
        // Only Patient in the file, with Encounter missing: both come out.
        std::fs::write(
            dir.path().join(CACHED),
            format!(r#"{{"Patient": {{"p2": "{}"}}}}"#, a.hash("p2")),
        )
        .unwrap();
        let b = Codebook::open(dir.path()).unwrap();
        b.fake_id("Patient", "p9", true);
        b.fake_id("Patient", "p2", true); // already cached: not written twice
        b.fake_id("Patient", "p1", true);
        b.fake_id("Encounter", "e1", false); // not cached
        assert!(dir.path().join(NEW_IDS).exists());
        b.save().unwrap();
        assert!(!dir.path().join(NEW_IDS).exists());
        b.fake_id("Encounter", "e2", true);
        b.save().unwrap();
        b.save().unwrap(); // nothing new: the file stays as it is
        let text = std::fs::read_to_string(dir.path().join(CACHED)).unwrap();
        let expected = format!(
            r#"{{"Patient":{{"p2":"{}","p9":"{}","p1":"{}"}},"Encounter":{{"e2":"{}"}}}}"#,
            b.hash("p2"),
            b.hash("p9"),
            b.hash("p1"),
            b.hash("e2")
        );
        assert_eq!(text, expected);
        // A scratch file left by a crash is dropped; its ids come again with the rerun.
        let c = Codebook::open(dir.path()).unwrap();
        c.fake_id("Encounter", "e3", true);
        drop(c);
        assert!(dir.path().join(NEW_IDS).exists());
        let d = Codebook::open(dir.path()).unwrap();
        assert!(!dir.path().join(NEW_IDS).exists());
        d.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CACHED)).unwrap(),
            expected
        );
        // A broken file is named.
        std::fs::write(dir.path().join(CACHED), r#"{"Patient": ["#).unwrap();
        let err = Codebook::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(CACHED) && err.contains("not the expected JSON"),
            "{err}"
        );
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
