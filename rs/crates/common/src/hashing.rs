use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// Hashes every byte read through it, so a stream is verified in the same pass that uses it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (
            Digest::from_bytes(self.hasher.finalize().into()),
            self.count,
        )
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes every byte written through it: outputs are hashed while they are written, never re-read.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer, the digest and the length of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_bytes(self.hasher.finalize().into()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The sha256 and size of a file, streamed. Follows symbolic links, but refuses a path that is not
/// a regular file (a FIFO would block, a directory has no bytes to hash).
pub fn sha256_file(path: &Path) -> io::Result<(Digest, u64)> {
    sha256_reader(crate::open_regular(path)?)
}

/// The sha256 and length of everything `reader` yields, streamed.
pub fn sha256_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut reader = HashingReader::new(reader);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_and_writer_agree_with_one_shot_digest() {
        let data = vec![7u8; 100_000];
        let mut r = HashingReader::new(&data[..]);
        let mut out = Vec::new();
        io::copy(&mut r, &mut out).unwrap();
        assert_eq!(r.finish(), (Digest::of(&data), data.len() as u64));

        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!((digest, n), (Digest::of(&data), 100_000));
        assert_eq!(inner, data);
    }
}
