//! De-identification as cumulus-etl does it, so the same salt gives the same tables: every id
//! and reference hashed with HMAC-SHA256 under the site's salt, and everything not on the
//! allow-list dropped. The allow-list is a data file (`data/rules.txt`), not code, so it can
//! be reviewed by people who do not read Rust.

/// The PHI folder's `codebook.json` and cached mappings: the salt and real-to-fake ids.
pub mod codebook;
/// The allow-list and extension lists, parsed from the data files.
pub mod rules;
/// The scrubber: applies the rules to one resource in place.
pub mod scrub;

pub use codebook::{Codebook, DeidError};
pub use rules::RuleSet;
pub use scrub::{Rejected, ScrubReport, Scrubber};
