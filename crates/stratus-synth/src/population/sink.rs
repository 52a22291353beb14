//! Per-chunk output: one byte buffer of NDJSON lines per resource type.
//!
//! A chunk of patients is generated on one thread into its own [`Sink`]; the orchestrator
//! then appends each type's buffer to that type's file in chunk order. Nothing here is
//! shared between threads, which is what makes the output independent of the thread count.

use std::ops::{Deref, DerefMut};

use super::json::Json;
use super::time::Stamp;

macro_rules! kinds {
    ($($k:ident),* $(,)?) => {
        /// The resource types a population contains (sorted, so files are listed in order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Kind { $($k),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$k),*];

            /// The FHIR resource type name.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$k => stringify!($k)),* }
            }
        }
    };
}

kinds!(
    AllergyIntolerance,
    Binary,
    Condition,
    Device,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    EpisodeOfCare,
    Group,
    Immunization,
    Location,
    Medication,
    MedicationDispense,
    MedicationRequest,
    Observation,
    Organization,
    Patient,
    Practitioner,
    PractitionerRole,
    Procedure,
    ServiceRequest,
    Specimen,
);

/// A resource being written: its type and its JSON so far.
pub(super) struct Res {
    kind: Kind,
    json: Json,
}

impl Deref for Res {
    type Target = Json;
    fn deref(&self) -> &Json {
        &self.json
    }
}

impl DerefMut for Res {
    fn deref_mut(&mut self) -> &mut Json {
        &mut self.json
    }
}

/// NDJSON lines per resource type, for one chunk.
pub(super) struct Sink {
    bufs: Vec<Vec<u8>>,
    /// The buffer of the last finished resource, reused for the next one.
    spare: Vec<u8>,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            bufs: vec![Vec::new(); Kind::ALL.len()],
            spare: Vec::with_capacity(4096),
        }
    }
}

impl Sink {
    /// Starts a resource with `resourceType`, `id` and `meta.lastUpdated`.
    pub fn begin(&mut self, kind: Kind, id: &str, updated: Stamp, millis: u32) -> Res {
        let mut json = Json::with_buffer(std::mem::take(&mut self.spare));
        json.open();
        json.str("resourceType", kind.name());
        json.str("id", id);
        json.obj("meta", |j| j.instant("lastUpdated", updated, millis));
        Res { kind, json }
    }

    /// Finishes a resource and appends it as one line.
    pub fn end(&mut self, res: Res) {
        let Res { kind, mut json } = res;
        json.close();
        let buf = &mut self.bufs[kind as usize];
        buf.extend_from_slice(json.bytes());
        buf.push(b'\n');
        self.spare = json.into_buffer();
    }

    /// The NDJSON bytes of one type (every line ends in a newline).
    pub fn bytes(&self, kind: Kind) -> &[u8] {
        &self.bufs[kind as usize]
    }
}
