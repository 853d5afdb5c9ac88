//! Identifiers derived from the build seed, never drawn at random.
//!
//! Same idea as `systemd-repart --seed`: every UUID, volume id and hash seed an image needs is a
//! pure function of one seed string and a purpose label, so two builders get identical bytes and
//! two different images (different seeds) still get distinct identifiers.
//!
//! Purposes in use (ARCHITECTURE.md, "Seeds", keeps the same list): `ext4:uuid:<label>`,
//! `ext4:hash_seed:<label>`, `vfat:volume_id:<label>`, `gpt:disk`, `gpt:partition:<name>`,
//! `verity:salt:<label>` ([`verity_salt`]), `verity:uuid:<label>` ([`verity_uuid`]).

use sha2::{Digest as _, Sha256};

/// 32 bytes derived from `seed` for `purpose` (domain-separated SHA-256).
pub fn derive_bytes(seed: &str, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"icos-seed-v1\0");
    h.update((seed.len() as u64).to_le_bytes());
    h.update(seed.as_bytes());
    h.update((purpose.len() as u64).to_le_bytes());
    h.update(purpose.as_bytes());
    h.finalize().into()
}

/// An RFC 4122 version-4-shaped UUID (big-endian byte order, as printed) derived from `seed` and `purpose`.
pub fn derive_uuid(seed: &str, purpose: &str) -> [u8; 16] {
    let b = derive_bytes(seed, purpose);
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

/// The 32-byte dm-verity salt of the hash tree labelled `label`: all of
/// `derive_bytes(seed, "verity:salt:<label>")` (32 bytes, the size of a sha256 block digest and
/// what `veritysetup format` draws by default).
pub fn verity_salt(seed: &str, label: &str) -> [u8; 32] {
    derive_bytes(seed, &format!("verity:salt:{label}"))
}

/// The UUID stored in the dm-verity superblock of the hash tree labelled `label`:
/// `derive_uuid(seed, "verity:uuid:<label>")`.
pub fn verity_uuid(seed: &str, label: &str) -> [u8; 16] {
    derive_uuid(seed, &format!("verity:uuid:{label}"))
}

/// Formats a UUID (big-endian bytes) as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_well_formed() {
        let a = derive_uuid("seed", "disk");
        assert_eq!(a, derive_uuid("seed", "disk"));
        assert_ne!(a, derive_uuid("seed", "partition:root"));
        assert_ne!(a, derive_uuid("other", "disk"));
        // no ambiguity between (seed, purpose) splits
        assert_ne!(derive_bytes("ab", "c"), derive_bytes("a", "bc"));
        let s = format_uuid(&a);
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
    }

    #[test]
    fn verity_ids_are_their_documented_purposes_and_distinct() {
        assert_eq!(
            verity_salt("seed", "root"),
            derive_bytes("seed", "verity:salt:root")
        );
        assert_eq!(
            verity_uuid("seed", "root"),
            derive_uuid("seed", "verity:uuid:root")
        );
        assert_ne!(verity_salt("seed", "root"), verity_salt("seed", "root-b"));
        assert_ne!(verity_salt("seed", "root"), verity_salt("other", "root"));
        assert_ne!(
            verity_salt("seed", "root")[..16],
            verity_uuid("seed", "root")[..]
        );
    }
}
