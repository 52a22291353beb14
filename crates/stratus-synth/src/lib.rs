//! Synthetic FHIR R4 data for testing and benchmarking every other Stratus command.
