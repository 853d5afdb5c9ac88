use std::io::{self, Read, Write};
use std::mem;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// SHA-256 computed on a second thread. The caller only copies its bytes into 1 MiB batches
/// (memcpy runs several times faster than SHA-NI's sha256), so hashing a big stream overlaps with
/// whatever produces or consumes it: the layer parse, the tar writer. For streams of many MiB; a
/// small one is cheaper hashed inline than with a thread.
pub struct BackgroundSha256 {
    batch: Vec<u8>,
    to_worker: Option<SyncSender<Vec<u8>>>,
    /// Emptied batches coming back, so the stream reuses a few buffers.
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<[u8; 32]>>,
}

const BACKGROUND_BATCH: usize = 1 << 20;

impl BackgroundSha256 {
    pub fn new() -> Self {
        // Four batches in flight at most: the producer waits rather than queueing without bound.
        let (to_worker, batches) = mpsc::sync_channel::<Vec<u8>>(4);
        let (give_back, spare) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for mut batch in batches {
                    hasher.update(&batch);
                    batch.clear();
                    let _ = give_back.send(batch);
                }
                hasher.finalize().into()
            })
            .expect("cannot start a hashing thread");
        BackgroundSha256 {
            batch: Vec::with_capacity(BACKGROUND_BATCH),
            to_worker: Some(to_worker),
            spare,
            worker: Some(worker),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (BACKGROUND_BATCH - self.batch.len()).min(data.len());
            self.batch.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.batch.len() == BACKGROUND_BATCH {
                self.ship();
            }
        }
    }

    fn ship(&mut self) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BACKGROUND_BATCH));
        let full = mem::replace(&mut self.batch, next);
        let sender = self.to_worker.as_ref().expect("not finished");
        sender.send(full).expect("the hashing thread stopped");
    }

    pub fn finalize(mut self) -> [u8; 32] {
        if !self.batch.is_empty() {
            self.ship();
        }
        self.to_worker = None; // ends the worker's loop
        let worker = self.worker.take().expect("finalized once");
        worker.join().expect("the hashing thread panicked")
    }
}

impl Default for BackgroundSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for BackgroundSha256 {
    fn drop(&mut self) {
        // Unfinished (an error path): stop the worker without waiting for a digest nobody reads.
        self.to_worker = None;
    }
}

/// A stream's SHA-256: inline, or on a second thread ([`BackgroundSha256`]) for big streams.
pub enum StreamHasher {
    Inline(Sha256),
    Background(BackgroundSha256),
}

impl StreamHasher {
    /// From this many bytes on, a thread of its own costs less than the hashing it takes away
    /// (starting one takes tens of microseconds; hashing 1 MiB, about 0.7 ms).
    pub const BACKGROUND_FROM: u64 = 1 << 20;

    /// The cheaper hasher for a stream of `len` bytes.
    pub fn for_len(len: u64) -> Self {
        if len >= Self::BACKGROUND_FROM {
            StreamHasher::Background(BackgroundSha256::new())
        } else {
            StreamHasher::Inline(Sha256::new())
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            StreamHasher::Inline(h) => h.update(data),
            StreamHasher::Background(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        Digest::from_bytes(match self {
            StreamHasher::Inline(h) => h.finalize().into(),
            StreamHasher::Background(h) => h.finalize(),
        })
    }
}

/// Hashes every byte read through it, so a stream is verified in the same pass that uses it.
pub struct HashingReader<R> {
    inner: R,
    hasher: StreamHasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_hasher(inner, StreamHasher::Inline(Sha256::new()))
    }

    /// With a hasher of the caller's choice, e.g. [`StreamHasher::for_len`] of a blob's size.
    pub fn with_hasher(inner: R, hasher: StreamHasher) -> Self {
        HashingReader {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
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
    hasher: StreamHasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: StreamHasher::Inline(Sha256::new()),
            count: 0,
        }
    }

    /// Hashes on a second thread ([`BackgroundSha256`]): for outputs of many MiB.
    pub fn background(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: StreamHasher::Background(BackgroundSha256::new()),
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
        let digest = self.hasher.finish();
        (self.inner, digest, self.count)
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

    /// Batches, their boundaries and the empty stream hash as one inline pass does.
    #[test]
    fn background_hashing_agrees_with_inline() {
        let data: Vec<u8> = (0..3 * BACKGROUND_BATCH + 12_345)
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect();
        for len in [0, 1, BACKGROUND_BATCH - 1, BACKGROUND_BATCH, data.len()] {
            let part = &data[..len];
            let mut r =
                HashingReader::with_hasher(part, StreamHasher::Background(BackgroundSha256::new()));
            let mut out = Vec::new();
            // Odd read sizes: batches never line up with reads.
            let mut buf = vec![0u8; 70_001];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(
                r.finish(),
                (Digest::of(part), len as u64),
                "reader, {len} bytes"
            );

            let mut w = HashingWriter::background(Vec::new());
            for chunk in part.chunks(333_333) {
                w.write_all(chunk).unwrap();
            }
            let (inner, digest, n) = w.finish();
            assert_eq!(
                (digest, n),
                (Digest::of(part), len as u64),
                "writer, {len} bytes"
            );
            assert_eq!(inner, part);
        }
    }

    #[test]
    fn dropping_an_unfinished_background_hasher_stops_its_thread() {
        let mut h = BackgroundSha256::new();
        h.update(&vec![1u8; 5 * BACKGROUND_BATCH]);
        drop(h); // must not hang or panic
    }
}
