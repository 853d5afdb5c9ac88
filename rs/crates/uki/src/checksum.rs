//! The PE image checksum (the optional header's CheckSum field), computed in pieces.
//!
//! The algorithm (Microsoft's `CheckSumMappedFile`, which the PE format specification refers to):
//! add the file as little-endian 16-bit words, the CheckSum field itself taken as zero and an odd
//! last byte padded with a zero byte, folding every carry out of bit 15 back into bit 0; then add
//! the file length. End-around-carry addition is associative and commutative, so pieces of the
//! file that start at even offsets can be summed separately (in any order) and merged: that is
//! what lets the writer know the checksum before it writes the headers. Hand-written (a dozen
//! lines): `object` does not compute it.

/// A running 16-bit end-around-carry sum over bytes that start at an even file offset.
#[derive(Clone, Debug, Default)]
pub struct PeChecksum {
    /// Sum of the words so far, folded only at the end (2^32 words of 0xffff fit in 48 bits).
    sum: u64,
    /// The first byte of a word whose second byte has not arrived yet.
    pending: Option<u8>,
}

impl PeChecksum {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        if let Some(low) = self.pending.take() {
            match bytes.split_first() {
                Some((&high, rest)) => {
                    self.sum += u64::from(u16::from_le_bytes([low, high]));
                    bytes = rest;
                }
                None => {
                    self.pending = Some(low);
                    return;
                }
            }
        }
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_le_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.pending = Some(*last);
        }
    }

    /// Adds another piece's sum. Both pieces start at even offsets, and `other` is followed by
    /// a zero byte (padding) or the end of the file, so an odd last byte is a word by itself.
    pub fn merge(&mut self, other: &PeChecksum) {
        debug_assert!(
            self.pending.is_none(),
            "merge into a piece that ends mid-word"
        );
        self.sum += other.sum + other.pending.map_or(0, u64::from);
    }

    /// The checksum of a file of `file_len` bytes whose words were all added (the checksum field
    /// as zero).
    pub fn finish(&self, file_len: u32) -> u32 {
        let mut sum = self.sum + self.pending.map_or(0, u64::from);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        (sum as u32).wrapping_add(file_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook form: one word at a time, folding after every addition.
    fn reference(data: &[u8]) -> u32 {
        let mut sum: u32 = 0;
        for w in data.chunks(2) {
            let word = u32::from(w[0]) | w.get(1).map_or(0, |&b| u32::from(b) << 8);
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum + data.len() as u32
    }

    #[test]
    fn pieces_at_any_split_equal_the_whole() {
        let data: Vec<u8> = (0..1001u32)
            .map(|i| (i * 7919 % 251) as u8 ^ 0xa5)
            .collect();
        let expect = reference(&data);
        for split in [0, 1, 2, 3, 500, 999, 1000, 1001] {
            let mut c = PeChecksum::new();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.finish(data.len() as u32), expect, "split at {split}");
        }
        // Merging separately summed pieces that start at even offsets.
        let mut a = PeChecksum::new();
        a.update(&data[..600]);
        let mut b = PeChecksum::new();
        b.update(&data[600..]);
        a.merge(&b);
        assert_eq!(a.finish(data.len() as u32), expect);
    }

    #[test]
    fn carries_fold_back() {
        let data = vec![0xffu8; 64 * 1024 + 1];
        assert_eq!(
            PeChecksum {
                sum: 0,
                pending: None
            }
            .finish(0),
            0
        );
        let mut c = PeChecksum::new();
        c.update(&data);
        assert_eq!(c.finish(data.len() as u32), reference(&data));
    }
}
