//! Little-endian on-disk fields.
//!
//! ext4 splits wide values over a low and a high field (uid, size, block numbers, i_blocks):
//! [`lo16`], [`hi16`], [`lo32`], [`hi32`] take those halves by bytes, so no value is ever
//! narrowed by an `as` cast. Everything that must fit one field whole is bounded where it enters
//! (the tar's entries in `tree`, the geometry in `layout`) and converted with `try_from` here.

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn lo16(v: u32) -> u16 {
    let [a, b, _, _] = v.to_le_bytes();
    u16::from_le_bytes([a, b])
}

pub fn hi16(v: u32) -> u16 {
    let [_, _, c, d] = v.to_le_bytes();
    u16::from_le_bytes([c, d])
}

pub fn lo32(v: u64) -> u32 {
    let [a, b, c, d, ..] = v.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

pub fn hi32(v: u64) -> u32 {
    let [.., e, f, g, h] = v.to_le_bytes();
    u32::from_le_bytes([e, f, g, h])
}

/// A value that the checks on the way in bound to 16 bits (`why` names the check).
pub fn u16_of(v: impl TryInto<u16>, why: &str) -> u16 {
    v.try_into()
        .unwrap_or_else(|_| panic!("out of range for a 16-bit field: {why}"))
}

/// A value that the checks on the way in bound to 32 bits (`why` names the check).
pub fn u32_of(v: impl TryInto<u32>, why: &str) -> u32 {
    v.try_into()
        .unwrap_or_else(|_| panic!("out of range for a 32-bit field: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves() {
        assert_eq!((lo16(0x1234_5678), hi16(0x1234_5678)), (0x5678, 0x1234));
        let v = 0x0123_4567_89ab_cdef_u64;
        assert_eq!((lo32(v), hi32(v)), (0x89ab_cdef, 0x0123_4567));
    }
}
