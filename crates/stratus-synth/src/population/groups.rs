//! Group resources for cohorts, as Group-level Bulk Data export uses them.
//!
//! Membership is a pure function of the patient index (see [`super::patient::core`]), so the
//! Groups are written after all patients by recomputing it index by index, and the `member`
//! array is streamed into the file: a Group of a million members is never held in memory.
//! It is still one NDJSON line of about 63 bytes per member (63 MB for a million), which
//! readers with the default 256 MiB line limit accept up to about four million members.

use rayon::prelude::*;
use stratus_fhir::NdjsonWriter;

use crate::SynthError;
use crate::ids::population_id;

use super::codes::{CHRONIC, Code, DIABETES, SNOMED, code};
use super::json::Json;
use super::patient::{self, Core};
use super::time::{self, Stamp, Tz};

/// A cohort Group.
pub(super) struct Cohort {
    pub id: &'static str,
    pub name: &'static str,
    pub member: fn(&Core) -> bool,
    /// (what is characterised, its value) when the cohort has a coded definition.
    pub characteristic: Option<(Code, Code)>,
}

/// The cohorts, with their fixed, readable Group ids.
pub(super) static COHORTS: &[Cohort] = &[
    Cohort {
        id: "all-patients",
        name: "All patients",
        member: |_| true,
        characteristic: None,
    },
    Cohort {
        id: "diabetes",
        name: "Patients with type 2 diabetes",
        member: |c| c.diabetic,
        characteristic: Some((
            code(SNOMED, "439401001", "Diagnosis (observable entity)"),
            CHRONIC[DIABETES].snomed,
        )),
    },
    Cohort {
        id: "sample-10pct",
        name: "Random 10% sample of patients",
        member: |c| c.sampled,
        characteristic: None,
    },
];

/// Patients whose membership is computed together before being written.
const CHUNK: u64 = 8192;

/// Writes every cohort Group. `counts[k]` is the number of members of `COHORTS[k]`
/// (tallied while patients were generated) so `quantity` can precede `member`.
pub(super) fn write_groups(
    seed: u64,
    patients: u64,
    counts: &[u64],
    writer: &mut NdjsonWriter,
) -> Result<(), SynthError> {
    for (cohort, &count) in COHORTS.iter().zip(counts) {
        let mut head = Json::with_buffer(Vec::with_capacity(512));
        head.open();
        head.str("resourceType", "Group");
        head.str("id", cohort.id);
        let updated = Stamp::at(time::END, 23, 59, Tz::EASTERN);
        head.obj("meta", |j| j.instant("lastUpdated", updated, 0));
        head.bool("active", true);
        head.str("type", "person");
        head.bool("actual", true);
        head.str("name", cohort.name);
        head.int("quantity", count as i64);
        if let Some((what, value)) = &cohort.characteristic {
            head.arr("characteristic", |j| {
                j.item(|j| {
                    j.concept("code", what);
                    j.concept("valueCodeableConcept", value);
                    j.bool("exclude", false);
                })
            });
        }
        let head = head.into_buffer();
        let member = cohort.member;
        let mut written = 0u64;
        writer.write_line_with(|w| {
            let mut bytes = head.len() as u64;
            w.write_all(&head)?;
            if count > 0 {
                w.write_all(b",\"member\":[")?;
                bytes += 11;
                let chunks = patients.div_ceil(CHUNK);
                let window = (2 * rayon::current_num_threads()).max(2) as u64;
                let mut first = true;
                for start in (0..chunks).step_by(window as usize) {
                    let parts: Vec<(Vec<u8>, u64)> = (start..(start + window).min(chunks))
                        .into_par_iter()
                        .map(|c| members(seed, c * CHUNK..((c + 1) * CHUNK).min(patients), member))
                        .collect();
                    for (part, n) in parts {
                        if part.is_empty() {
                            continue;
                        }
                        // Each part starts with a comma; the first one overall must not.
                        let part = if first { &part[1..] } else { &part[..] };
                        first = false;
                        w.write_all(part)?;
                        bytes += part.len() as u64;
                        written += n;
                    }
                }
                w.write_all(b"]")?;
                bytes += 1;
            }
            w.write_all(b"}")?;
            Ok(bytes + 1)
        })?;
        if written != count && count > 0 {
            return Err(SynthError::Invalid(format!(
                "Group {}: {written} members written but {count} counted (a bug)",
                cohort.id
            )));
        }
    }
    Ok(())
}

/// `,{"entity":{"reference":"Patient/…"}}` for each member in `range`, and how many.
fn members(seed: u64, range: std::ops::Range<u64>, member: fn(&Core) -> bool) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut n = 0;
    for i in range {
        if member(&patient::core(seed, i)) {
            out.extend_from_slice(b",{\"entity\":{\"reference\":\"Patient/");
            out.extend_from_slice(population_id(seed, "Patient", i).as_bytes());
            out.extend_from_slice(b"\"}}");
            n += 1;
        }
    }
    (out, n)
}
