//! Stable, UUID-shaped ids derived from names rather than from a random stream, so that a
//! reference can be computed anywhere without a lookup table (which would not fit in memory
//! at a million patients).

use sha2::{Digest, Sha256};

/// Formats 128 bits as a version-4, variant-1 UUID string.
pub fn format_uuid(hi: u64, lo: u64) -> String {
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// A UUID that is a pure function of its parts.
pub fn stable_uuid(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&d[..8]);
    lo.copy_from_slice(&d[8..16]);
    format_uuid(u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

/// The id of the `index`-th resource of `kind` in a population made with `seed`.
pub fn population_id(seed: u64, kind: &str, index: u64) -> String {
    stable_uuid(&[&seed.to_le_bytes(), kind.as_bytes(), &index.to_le_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_and_stable() {
        let a = population_id(7, "Patient", 1);
        assert_eq!(a, population_id(7, "Patient", 1));
        assert_ne!(a, population_id(7, "Patient", 2));
        assert_ne!(a, population_id(8, "Patient", 1));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
