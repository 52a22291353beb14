//! Synthetic FHIR R4 populations, deterministic for a seed and streaming at any size.
//!
//! `generate` writes one `Type.ndjson[.gz]` per resource type. The same `(patients, seed)`
//! gives byte-identical files whatever the thread count: patient `i` draws everything from
//! its own random stream `Rng::new(seed, i)`, patients are generated in chunks in parallel,
//! and each chunk's per-type buffers are appended to the files in chunk order. Memory stays
//! flat: only a window of chunks (two per thread) is in memory at a time, shared pools are
//! capped, and nothing is kept per patient once its chunk is written. (Values go through
//! `f64` `exp`, `ln`, `cos` and `powf`, so another platform's maths library could in
//! principle round a value differently; on one platform output is stable.)
//!
//! What a population contains:
//!
//! * Pools shared by patients, sized from the patient count with caps and referenced by
//!   index through `population_id(seed, Type, index)`: Organization, Location,
//!   Practitioner, PractitionerRole, Medication.
//! * Per patient: Patient (with US Core race, ethnicity and birth sex, an MRN under
//!   [`MRN_SYSTEM`], sometimes an older duplicate it `replaces`), then Encounters with their
//!   Conditions, Observations, MedicationRequests and MedicationDispenses, Procedures,
//!   Immunizations, AllergyIntolerances, ServiceRequests, Specimens, DiagnosticReports,
//!   DocumentReferences with Binaries (plain text, HTML, PDF), EpisodesOfCare and Devices.
//!   A patient has about 125 resources on average (124,681 for 1,000 patients with seed
//!   7), 60% of them Observations; most patients have 2 to 15 encounters, a few over 50.
//! * Groups (type `person`, `actual`), written last with streamed `member` arrays:
//!   `Group/all-patients` (every patient, not the inactive duplicates), `Group/diabetes`
//!   (patients with a type 2 diabetes Condition) and `Group/sample-10pct` (a random 10%).
//!
//! Modules:
//!
//! * [`clinical`]: a patient's history, visit by visit, and most clinical resources.
//! * [`codes`]: code tables (SNOMED, LOINC, RxNorm, ICD-10-CM, CVX, HL7) and their links.
//! * [`demographics`]: names, places and time zones, languages, race and ethnicity.
//! * [`encode`]: base64 and SHA-1 for attachments.
//! * [`groups`]: cohort Groups with streamed membership.
//! * [`json`]: the compact JSON writer resources are written with.
//! * [`notes`]: clinical notes (DocumentReference, Binary) and narrative reports.
//! * [`observations`]: vital signs, labs with their orders, specimens and reports, surveys.
//! * [`patient`]: cohort traits, MRNs, demographics and the Patient resource.
//! * [`pdf`]: minimal valid PDF 1.4 documents for notes.
//! * [`pools`]: shared Organizations, Locations, Practitioners, roles and Medications.
//! * [`sink`]: per-chunk, per-type output buffers.
//! * [`time`]: calendar arithmetic and US time zones with daylight saving.

mod clinical;
mod codes;
mod demographics;
mod encode;
mod groups;
mod json;
mod notes;
mod observations;
mod patient;
mod pdf;
mod pools;
mod sink;
#[cfg(test)]
mod tests;
mod time;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use stratus_fhir::{Compression, NdjsonWriter};

use crate::SynthError;
use pools::Pools;
use sink::{Kind, Sink};

pub use patient::mrn;

/// The identifier system of the MRNs on every Patient (crawlers search
/// `Patient?identifier=MRN_SYSTEM|value`). MRN values come from [`mrn`].
pub const MRN_SYSTEM: &str = "http://hospital.example.org/fhir/mrn";

/// The identifier system of specimen accession numbers.
const ACCESSION_SYSTEM: &str = "http://hospital.example.org/fhir/accession";

/// Patients per chunk: large enough to amortise scheduling, small enough that a window of
/// chunks is a few tens of megabytes.
const CHUNK_PATIENTS: u64 = 64;
/// Pool resources per chunk.
const CHUNK_POOL: u64 = 2048;

/// What to generate.
#[derive(Debug, Clone)]
pub struct PopulationConfig {
    pub patients: u64,
    pub seed: u64,
    pub compression: Compression,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Resources per type.
    pub counts: BTreeMap<String, u64>,
    /// Files written, sorted.
    pub files: Vec<PathBuf>,
    /// Uncompressed bytes written.
    pub bytes: u64,
}

/// What a chunk of patients adds to the Group counts and the progress bar.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    patients: u64,
    cohorts: [u64; 3],
}

/// Writes one `Type.ndjson[.gz]` per resource type into `out` (created if missing).
/// `progress(n)` hears of `n` more patients written.
pub fn generate(
    config: &PopulationConfig,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Summary, SynthError> {
    if config.patients == 0 {
        return Err(SynthError::Invalid(
            "a population needs at least one patient".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|error| SynthError::Io {
        path: out.to_path_buf(),
        error,
    })?;
    let seed = config.seed;
    let patients = config.patients;
    let pools = Pools::new(seed, patients);
    let mut writers = Writers::create(out, config.compression)?;

    run_chunks(
        pools.total().div_ceil(CHUNK_POOL),
        &mut writers,
        |c| {
            let mut sink = Sink::default();
            for item in span(c, CHUNK_POOL, pools.total()) {
                pools.write(item, &mut sink);
            }
            (sink, Tally::default())
        },
        |_| {},
    )?;

    let mut tally = Tally::default();
    run_chunks(
        patients.div_ceil(CHUNK_PATIENTS),
        &mut writers,
        |c| {
            let mut sink = Sink::default();
            let mut t = Tally::default();
            for i in span(c, CHUNK_PATIENTS, patients) {
                let core = clinical::generate_patient(seed, i, &pools, &mut sink);
                t.patients += 1;
                for (k, cohort) in groups::COHORTS.iter().enumerate() {
                    t.cohorts[k] += (cohort.member)(&core) as u64;
                }
            }
            (sink, t)
        },
        |t| {
            tally.patients += t.patients;
            for (a, b) in tally.cohorts.iter_mut().zip(t.cohorts) {
                *a += b;
            }
            progress(t.patients);
        },
    )?;

    groups::write_groups(seed, patients, &tally.cohorts, writers.get(Kind::Group))?;
    writers.finish()
}

/// Item indexes of chunk `c`.
fn span(c: u64, size: u64, total: u64) -> Range<u64> {
    c * size..((c + 1) * size).min(total)
}

/// Generates chunks `0..chunks` in parallel, a window at a time, and appends them to the
/// files in chunk order. Writing window `k` overlaps generating window `k + 1`, so that
/// compression (one stream per file) runs beside generation rather than after it.
fn run_chunks<T: Send + Sync>(
    chunks: u64,
    writers: &mut Writers,
    make: impl Fn(u64) -> (Sink, T) + Sync,
    mut done: impl FnMut(T),
) -> Result<(), SynthError> {
    let window = (2 * rayon::current_num_threads()).max(2) as u64;
    let mut pending: Vec<(Sink, T)> = Vec::new();
    let mut next = 0;
    while next < chunks || !pending.is_empty() {
        let range = next..(next + window).min(chunks);
        next = range.end;
        let to_write = std::mem::take(&mut pending);
        let (generated, written) = rayon::join(
            || range.into_par_iter().map(&make).collect::<Vec<_>>(),
            || writers.append(&to_write),
        );
        written?;
        for (_, t) in to_write {
            done(t);
        }
        pending = generated;
    }
    Ok(())
}

/// One writer per resource type.
struct Writers {
    writers: Vec<NdjsonWriter>,
}

impl Writers {
    fn create(out: &Path, compression: Compression) -> Result<Writers, SynthError> {
        let writers = Kind::ALL
            .iter()
            .map(|k| {
                NdjsonWriter::create(
                    out.join(format!("{}{}", k.name(), compression.suffix())),
                    compression,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Writers { writers })
    }

    fn get(&mut self, kind: Kind) -> &mut NdjsonWriter {
        &mut self.writers[kind as usize]
    }

    /// Appends each chunk's lines, type by type (types in parallel, chunks in order).
    fn append(&mut self, chunks: &[(Sink, impl Sync)]) -> Result<(), SynthError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.writers
            .par_iter_mut()
            .zip(Kind::ALL.par_iter())
            .try_for_each(|(w, &kind)| {
                for (sink, _) in chunks {
                    let bytes = sink.bytes(kind);
                    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                    if bytes.is_empty() {
                        continue;
                    }
                    for line in bytes.split(|&b| b == b'\n') {
                        w.write_line(line)?;
                    }
                }
                Ok::<(), SynthError>(())
            })
    }

    /// Finishes every file that has lines; types without resources leave no file.
    fn finish(self) -> Result<Summary, SynthError> {
        let mut summary = Summary::default();
        for (w, kind) in self.writers.into_iter().zip(Kind::ALL) {
            if w.lines() == 0 {
                drop(w);
                continue;
            }
            let s = w.finish()?;
            summary.counts.insert(kind.name().to_owned(), s.lines);
            summary.bytes += s.bytes;
            summary.files.push(s.path);
        }
        summary.files.sort();
        Ok(summary)
    }
}
