//! Managed exports the way smart-fetch lays them out, so a site can switch tools without
//! touching its folders: numbered work folders with `.metadata`, a per-patient crawler for
//! EHRs where a bulk export of everyone is not realistic, since modes, deleted-resource
//! emulation, hydration of referenced resources, and top-level symlinks to what is current.

/// Journaled chunk files: how a crawl commits finished patients and resumes.
pub mod chunks;
/// The cohort: ids or MRNs from a list, a file or CSV, or Patient files.
pub mod cohort;
/// The per-patient crawler, resumable per patient and type.
pub mod crawl;
/// Deleted-resource emulation and new or merged patients.
pub mod deleted;
/// Errors of this crate.
pub mod error;
/// The managed export: choose the work folder, crawl or bulk, hydrate, deletes, symlinks.
pub mod export;
/// NDJSON files of a folder by resource type, and the ids in them.
pub mod files;
/// Hydration: referenced resources, PractitionerRole search, inlined attachments.
pub mod hydrate;
/// The crawl's stand-in `log.ndjson`, which cumulus-etl reads for group and time.
pub mod log;
/// `.metadata` files of the managed folder and of each work folder.
pub mod metadata;
/// What the server says about itself: vendor, types and search parameters.
pub mod server;
/// Since modes: which parameter carries "since" per type, and `--since auto`.
pub mod since;
/// Top-level symlinks to the files that are current.
pub mod symlinks;
/// The resource types a crawl knows, their order and default filters.
pub mod types;
/// Work folders `NNN.nickname`: listing, choosing, creating.
pub mod workdir;

pub use error::FetchError;
