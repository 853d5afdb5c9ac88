//! Reading an update package (`update-img.tar.zst`, as `icos-pack` writes it) from an untrusted
//! source, member by member, into sinks, checking it against its signed manifest on the way.
//!
//! Accepted: a zstd stream of a tar whose entries are exactly the manifest's members, in order,
//! each a regular file, either plain or in the GNU PAX sparse format 1.0 (the only PAX records
//! allowed are `GNU.sparse.major/minor/name/realsize` and `size`). Refused, before a byte of the
//! member reaches its sink: an unexpected, duplicate, missing or reordered member, another entry
//! type, a member whose size differs from the signed one. Refused while streaming: more compressed
//! bytes than the signed package size (never read past it), a truncated stream, a source that
//! stalls for longer than the timeout. Refused after a member: a sha256 other than the signed one.
//! Refused at the end: data after the archive, a package whose size or sha256 is not the signed one.

use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::Duration;

use icos_common::tarread::{TarReader, BLOCK};
use icos_common::Digest;
use sha2::{Digest as _, Sha256};

use crate::manifest::{Member, MEMBERS};

const CHUNK: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("update package {package}: {problem}")]
    Bad { package: String, problem: String },
    #[error("update package {package}: the source stalled: no data for {seconds} s")]
    Stalled { package: String, seconds: u64 },
    #[error("update package {package}: cannot read it: {source}")]
    Read { package: String, source: io::Error },
    #[error("cannot write member {member} to {target}: {source}")]
    Write {
        member: String,
        target: String,
        source: io::Error,
    },
}

/// What the package must be: the signed manifest's package size and digest and its members.
/// `None` scans a package (the build side): names and order are still enforced.
pub struct Expect<'a> {
    pub size: u64,
    pub sha256: Digest,
    pub members: &'a [Member],
}

/// Where a member's logical content goes, and how to name that place in errors.
pub struct Sink<'a> {
    pub target: String,
    pub out: &'a mut dyn Write,
}

/// Streams the package from `source` (read on a helper thread so a stalled source times out
/// after `stall`) into `sinks`, one per member of [`MEMBERS`] in order. Returns each member's
/// size and sha256 as read, and the package's. `package` names the source in errors.
pub fn stream(
    source: Box<dyn Read + Send>,
    package: &str,
    expect: Option<&Expect<'_>>,
    stall: Duration,
    sinks: &mut [Sink<'_>],
) -> Result<(Vec<Member>, Digest, u64), PackageError> {
    assert_eq!(sinks.len(), MEMBERS.len(), "one sink per member");
    let bad = |problem: String| PackageError::Bad {
        package: package.to_string(),
        problem,
    };
    let counted = Counted {
        inner: Timed::spawn(source, stall),
        hasher: Sha256::new(),
        count: 0,
        limit: expect.map_or(u64::MAX, |e| e.size),
    };
    let read_err = |e: io::Error| classify(package, stall, e);
    let decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, counted))
            .map_err(read_err)?;
    let mut tar = TarReader::new(decoder).require_end_marker();
    let mut found: Vec<Member> = Vec::new();
    for (i, sink) in sinks.iter_mut().enumerate() {
        let entry = tar
            .next_entry()
            .map_err(|e| read_err(e.into()))?
            .ok_or_else(|| {
                bad(format!(
                    "member {} is missing: the archive ends after {}",
                    MEMBERS[i],
                    if i == 0 { "no member" } else { MEMBERS[i - 1] }
                ))
            })?;
        let shape = Shape::of(&entry).map_err(&bad)?;
        if shape.name != MEMBERS[i] {
            return Err(bad(if MEMBERS[..i].contains(&shape.name.as_str()) {
                format!("member {} appears twice", shape.name)
            } else if MEMBERS.contains(&shape.name.as_str()) {
                format!(
                    "member {} out of order: expected {}",
                    shape.name, MEMBERS[i]
                )
            } else {
                format!(
                    "unexpected member {:?} (expected {})",
                    shape.name, MEMBERS[i]
                )
            }));
        }
        if let Some(e) = expect {
            let signed = &e.members[i];
            let size = shape.real_size.unwrap_or(entry.size);
            if size != signed.size {
                return Err(bad(format!(
                    "member {} holds {size} bytes, but the signed manifest says {}: refusing it before writing",
                    shape.name, signed.size
                )));
            }
        }
        let mut out = HashSink {
            out: &mut *sink.out,
            hasher: Sha256::new(),
            count: 0,
        };
        let wr = |source: io::Error| PackageError::Write {
            member: shape.name.clone(),
            target: sink.target.clone(),
            source,
        };
        let truncated = || bad(format!("member {} is truncated", shape.name));
        let mut data = tar.data();
        match shape.real_size {
            None => copy_exact(&mut data, &mut out, entry.size, &read_err, &wr, &truncated)?,
            Some(real) => {
                let (map, _) = read_sparse_map(&mut data, entry.size, real)
                    .map_err(|p| bad(format!("member {}: sparse map: {p}", shape.name)))?;
                let mut pos = 0u64;
                for (off, len) in map {
                    write_zeros(&mut out, off - pos).map_err(wr)?;
                    copy_exact(&mut data, &mut out, len, &read_err, &wr, &truncated)?;
                    pos = off + len;
                }
                write_zeros(&mut out, real - pos).map_err(wr)?;
            }
        }
        out.flush().map_err(wr)?;
        let member = Member {
            name: shape.name.clone(),
            size: out.count,
            sha256: Digest::from_bytes(out.hasher.finalize().into()),
        };
        if let Some(e) = expect {
            let signed = &e.members[i];
            if member.sha256 != signed.sha256 {
                return Err(bad(format!(
                    "member {} has {}, but the signed manifest says {}: the package was tampered with",
                    member.name, member.sha256, signed.sha256
                )));
            }
        }
        found.push(member);
    }
    if let Some(extra) = tar.next_entry().map_err(|e| read_err(e.into()))? {
        let name = Shape::of(&extra)
            .map(|s| s.name)
            .unwrap_or_else(|_| String::from_utf8_lossy(&extra.path).into_owned());
        return Err(bad(format!(
            "unexpected member {name:?} after {}",
            MEMBERS[MEMBERS.len() - 1]
        )));
    }
    // What follows the end marker is tar padding: zeros, a record at most.
    let mut decoder = tar.into_inner();
    let mut rest = Vec::new();
    (&mut decoder)
        .take(64 << 10)
        .read_to_end(&mut rest)
        .map_err(read_err)?;
    if rest.len() >= 64 << 10 || rest.iter().any(|&b| b != 0) {
        return Err(bad("data after the end of the archive".into()));
    }
    let mut raw = decoder.finish();
    let mut tail = [0u8; 1];
    if raw.read(&mut tail).map_err(read_err)? != 0 {
        return Err(bad("bytes after the compressed stream".into()));
    }
    let counted = raw.into_inner();
    let digest = Digest::from_bytes(counted.hasher.finalize().into());
    if let Some(e) = expect {
        if counted.count != e.size || digest != e.sha256 {
            return Err(bad(format!(
                "{} bytes with {digest}, but the signed manifest says {} bytes with {}",
                counted.count, e.size, e.sha256
            )));
        }
    }
    Ok((found, digest, counted.count))
}

/// An entry's member name, and its logical size when it is a PAX 1.0 sparse file.
struct Shape {
    name: String,
    real_size: Option<u64>,
}

impl Shape {
    fn of(entry: &icos_common::tarread::RawEntry) -> Result<Shape, String> {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        if !matches!(entry.typeflag, b'0' | b'\0') {
            return Err(format!(
                "entry {path:?} has tar type {:?}: only regular files are accepted",
                entry.typeflag as char
            ));
        }
        for (k, _) in &entry.pax {
            if !matches!(
                k.as_slice(),
                b"GNU.sparse.major"
                    | b"GNU.sparse.minor"
                    | b"GNU.sparse.name"
                    | b"GNU.sparse.realsize"
                    | b"size"
            ) {
                return Err(format!(
                    "entry {path:?} carries the PAX record {:?}, which update packages never hold",
                    String::from_utf8_lossy(k)
                ));
            }
        }
        let Some(name) = entry.pax_value(b"GNU.sparse.name") else {
            if entry.pax_value(b"GNU.sparse.major").is_some() {
                return Err(format!(
                    "entry {path:?}: a sparse entry without GNU.sparse.name"
                ));
            }
            return Ok(Shape {
                name: path,
                real_size: None,
            });
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if entry.pax_value(b"GNU.sparse.major") != Some(b"1")
            || entry.pax_value(b"GNU.sparse.minor") != Some(b"0")
        {
            return Err(format!(
                "member {name:?}: only the GNU sparse format 1.0 is accepted"
            ));
        }
        if path != format!("GNUSparseFile.0/{name}") {
            return Err(format!(
                "member {name:?}: sparse entry named {path:?}, not GNUSparseFile.0/{name}"
            ));
        }
        let real = entry
            .pax_value(b"GNU.sparse.realsize")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("member {name:?}: no valid GNU.sparse.realsize"))?;
        Ok(Shape {
            name,
            real_size: Some(real),
        })
    }
}

/// Reads the PAX 1.0 sparse map at the start of a member's data: decimal lines (count, then
/// offset and length per chunk) padded to whole blocks. Chunks must be in order, not overlapping,
/// inside `real`, and their lengths must add up to what the entry stores after the map.
fn read_sparse_map(
    data: &mut impl Read,
    stored: u64,
    real: u64,
) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut nums: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    let mut line = Vec::new();
    let mut consumed = 0u64;
    let mut block = [0u8; BLOCK];
    loop {
        if consumed + BLOCK as u64 > stored {
            return Err("the entry ends before the map does".into());
        }
        let mut got = 0;
        while got < BLOCK {
            let n = data.read(&mut block[got..]).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the archive ends inside the map".into());
            }
            got += n;
        }
        consumed += BLOCK as u64;
        for &b in block.iter() {
            if want.is_some_and(|w| nums.len() as u64 == 2 * w) {
                break; // the rest of the block is padding
            }
            if b != b'\n' {
                if line.len() > 20 || !b.is_ascii_digit() {
                    return Err("not decimal numbers, one per line".into());
                }
                line.push(b);
                continue;
            }
            let v: u64 = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("an empty or oversized number")?;
            line.clear();
            match want {
                None if v.saturating_mul(4) > stored => {
                    return Err(format!("declares {v} chunks, more than the entry can hold"))
                }
                None => want = Some(v),
                Some(_) => nums.push(v),
            }
        }
        if let Some(w) = want {
            if nums.len() as u64 == 2 * w {
                break;
            }
        }
    }
    let map: Vec<(u64, u64)> = nums.chunks(2).map(|c| (c[0], c[1])).collect();
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in &map {
        match off.checked_add(len) {
            Some(e) if off >= end && e <= real => end = e,
            _ => {
                return Err(format!(
                    "chunk {off}+{len} overlaps the previous one or ends past the size {real}"
                ))
            }
        }
        total += len;
    }
    if total != stored - consumed {
        return Err(format!(
            "lists {total} data bytes, but the entry stores {}",
            stored - consumed
        ));
    }
    Ok((map, consumed))
}

fn copy_exact(
    from: &mut impl Read,
    to: &mut impl Write,
    mut n: u64,
    read_err: &dyn Fn(io::Error) -> PackageError,
    wr: &dyn Fn(io::Error) -> PackageError,
    truncated: &dyn Fn() -> PackageError,
) -> Result<(), PackageError> {
    let mut buf = vec![0u8; CHUNK];
    while n > 0 {
        let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let got = match from.read(&mut buf[..want]) {
            Ok(0) => return Err(truncated()),
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        to.write_all(&buf[..got]).map_err(wr)?;
        n -= got as u64;
    }
    Ok(())
}

fn write_zeros(to: &mut impl Write, mut n: u64) -> io::Result<()> {
    let zeros = [0u8; CHUNK];
    while n > 0 {
        let k = zeros.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        to.write_all(&zeros[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Errors of the source chain become named problems: a stall, an oversized or truncated stream.
fn classify(package: &str, stall: Duration, e: io::Error) -> PackageError {
    let bad = |problem: String| PackageError::Bad {
        package: package.to_string(),
        problem,
    };
    if e.kind() == io::ErrorKind::TimedOut {
        return PackageError::Stalled {
            package: package.to_string(),
            seconds: stall.as_secs(),
        };
    }
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Oversize>()) {
        return bad(format!(
            "the source holds more than the {} bytes the signed manifest says",
            inner.0
        ));
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return bad(format!("the stream ends early (truncated): {e}"));
    }
    if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::Other {
        return bad(format!("not a readable zstd tar: {e}"));
    }
    PackageError::Read {
        package: package.to_string(),
        source: e,
    }
}

#[derive(Debug)]
struct Oversize(u64);
impl std::fmt::Display for Oversize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} bytes", self.0)
    }
}
impl std::error::Error for Oversize {}

/// The compressed bytes: hashed and counted, never more than `limit` passed on.
struct Counted<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.count + n as u64 > self.limit {
            return Err(io::Error::other(Oversize(self.limit)));
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

struct HashSink<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
    count: u64,
}

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A source read on its own thread: each read waits at most `stall` for the next chunk, so a
/// source that stops sending (a hung mirror, a pipe nobody writes) fails instead of hanging.
struct Timed {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    stall: Duration,
    eof: bool,
}

impl Timed {
    fn spawn(mut source: Box<dyn Read + Send>, stall: Duration) -> Timed {
        let (tx, rx) = sync_channel(4);
        std::thread::spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            match source.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        });
        Timed {
            rx,
            buf: Vec::new(),
            pos: 0,
            stall,
            eof: false,
        }
    }
}

impl Read for Timed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv_timeout(self.stall) {
                Ok(Ok(chunk)) if chunk.is_empty() => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "source stalled"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("the source's reader thread ended"))
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
