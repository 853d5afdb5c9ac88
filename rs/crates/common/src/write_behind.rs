//! An output hashed on the calling thread and written on a second one.
//!
//! [`crate::HashingWriter::background`] suits a writer whose bytes are produced in a buffer: it
//! copies them for the hashing thread. When most bytes already lie in memory (contents of an input
//! mapped in place, see [`crate::mapped`]), the copy is the waste: here the calling thread hashes
//! them where they lie and hands the writing thread a reference, and the kernel's copy into the
//! page cache (the costly part of writing a new file) runs on the other core.

use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// Small writes are gathered into buffers of this size.
const BATCH: usize = 256 << 10;
/// Borrowed slices from this size on are passed by reference instead of copied: a copy of a
/// smaller one costs less than the piece it would take.
const BORROW_FROM: usize = 16 << 10;

enum Piece<'data> {
    Owned(Vec<u8>),
    Borrowed(&'data [u8]),
}

/// The calling thread's end: [`Write`] for bytes that are copied, [`WriteBehind::write_borrowed`]
/// for bytes that outlive the output.
pub struct WriteBehind<'data> {
    hasher: Sha256,
    count: u64,
    batch: Vec<u8>,
    to_writer: SyncSender<Piece<'data>>,
    spare: Receiver<Vec<u8>>,
}

impl<'data> WriteBehind<'data> {
    /// Bytes appended so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Appends `bytes` without copying them (unless they are small): hashed here, written later
    /// by the writing thread.
    pub fn write_borrowed(&mut self, bytes: &'data [u8]) -> io::Result<()> {
        if bytes.len() < BORROW_FROM {
            return self.write_all(bytes);
        }
        self.hasher.update(bytes);
        self.count += bytes.len() as u64;
        self.ship_batch()?;
        self.send(Piece::Borrowed(bytes))
    }

    /// Appends `n` zero bytes, borrowed from one static zero block (never copied).
    pub fn write_zeros(&mut self, mut n: u64) -> io::Result<()> {
        static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.write_borrowed(&ZEROS[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn ship_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = mem::replace(&mut self.batch, next);
        self.send(Piece::Owned(full))
    }

    fn send(&self, piece: Piece<'data>) -> io::Result<()> {
        // A closed channel means the writer stopped on an error, which `write_behind` returns.
        self.to_writer
            .send(piece)
            .map_err(|_| io::Error::other("the writing thread stopped"))
    }
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (BATCH - self.batch.len()).min(buf.len());
        self.batch.extend_from_slice(&buf[..n]);
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.batch.len() == BATCH {
            self.ship_batch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // the writing thread flushes at the end
    }
}

/// Runs `produce` with a [`WriteBehind`] whose bytes a second thread writes to `out`, in order.
/// Returns what `produce` returned, `out` (flushed), and the digest and length of everything
/// written. An error of either thread is returned; the writing thread's wins (it is the cause
/// when `produce` fails because the writer stopped).
pub fn write_behind<'data, W, R>(
    out: W,
    produce: impl FnOnce(&mut WriteBehind<'data>) -> io::Result<R>,
) -> io::Result<(R, W, Digest, u64)>
where
    W: Write + Send,
{
    // A few pieces in flight: enough to keep both threads busy, few enough to bound memory.
    let (to_writer, pieces) = mpsc::sync_channel::<Piece<'data>>(8);
    let (give_back, spare) = mpsc::channel::<Vec<u8>>();
    thread::scope(|scope| {
        let writer = thread::Builder::new()
            .name("write behind".into())
            .spawn_scoped(scope, move || -> io::Result<W> {
                let mut out = out;
                for piece in pieces {
                    match piece {
                        Piece::Owned(mut bytes) => {
                            out.write_all(&bytes)?;
                            bytes.clear();
                            let _ = give_back.send(bytes);
                        }
                        Piece::Borrowed(bytes) => out.write_all(bytes)?,
                    }
                }
                out.flush()?;
                Ok(out)
            })
            .expect("cannot start a writing thread");
        let mut sink = WriteBehind {
            hasher: Sha256::new(),
            count: 0,
            batch: Vec::with_capacity(BATCH),
            to_writer,
            spare,
        };
        let produced = produce(&mut sink).and_then(|r| sink.ship_batch().map(|()| r));
        let WriteBehind {
            hasher,
            count,
            to_writer,
            ..
        } = sink;
        drop(to_writer); // closes the channel: the writer finishes
        let written = writer.join().expect("the writing thread panicked");
        let out = written?;
        let r = produced?;
        Ok((r, out, Digest::from_bytes(hasher.finalize().into()), count))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_borrowed_bytes_arrive_in_order_and_are_hashed() {
        let big: Vec<u8> = (0..3 * BATCH + 17).map(|i| (i * 7) as u8).collect();
        let (count, out, digest, len) = write_behind(Vec::new(), |w| {
            w.write_all(b"head")?;
            w.write_borrowed(&big)?;
            w.write_borrowed(b"small")?;
            for _ in 0..3 * BATCH / 1000 {
                w.write_all(&[1u8; 1000])?;
            }
            w.write_borrowed(&big[..BATCH])?;
            w.write_zeros(3 << 20)?;
            Ok(42)
        })
        .unwrap();
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"small");
        expected.extend(std::iter::repeat_n(1u8, 3 * BATCH / 1000 * 1000));
        expected.extend_from_slice(&big[..BATCH]);
        expected.resize(expected.len() + (3 << 20), 0);
        assert_eq!(count, 42);
        assert!(out == expected, "the bytes arrive in order");
        assert_eq!(len, expected.len() as u64);
        assert_eq!(digest, Digest::of(&expected));
    }

    #[test]
    fn a_writer_error_is_returned_and_stops_the_producer() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let big = vec![0u8; BATCH];
        let e = write_behind(Full, |w| {
            // Far more than the channel holds: the producer must notice the writer stopped.
            for _ in 0..1000 {
                w.write_borrowed(&big)?;
            }
            Ok(())
        })
        .err()
        .expect("the writer's error");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    }
}
