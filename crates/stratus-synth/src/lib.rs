//! Synthetic FHIR R4 data for testing and benchmarking every other Stratus command.
//!
//! Two sources: [`population`] invents patients from code tables, deterministic for a seed
//! and streaming at any size; [`multiply`] scales a real-shaped folder (such as Synthea
//! output) by rewriting every id and reference consistently.

pub mod error;
pub mod ids;
pub mod multiply;
pub mod population;
pub mod rng;

pub use error::SynthError;
