//! FHIR R4 JSON as data, for the whole Stratus workspace.
//!
//! This is the only crate that reads or writes NDJSON: every other crate goes through
//! [`reader::NdjsonReader`] and [`writer::NdjsonWriter`], so that gzip handling, line limits,
//! error positions and atomic output behave the same everywhere. Resources stay JSON values
//! ([`sonic_rs::Value`]); there is no typed FHIR model on purpose (see ARCHITECTURE.md).

pub mod bundle;
pub mod date;
pub mod elements;
pub mod error;
pub mod integrity;
pub mod names;
pub mod reader;
pub mod reference;
pub mod resource;
pub mod scan;
pub mod stats;
pub mod writer;

pub use error::{FhirError, LineProblem};
pub use reader::{Line, NdjsonReader, ReaderOptions};
pub use resource::Resource;
pub use writer::{Compression, NdjsonWriter};

/// Re-exported so that every crate builds values with the same JSON library.
pub use sonic_rs;
