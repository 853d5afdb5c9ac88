//! The tar reader every icos tool uses: headers, PAX extended headers, GNU long names and old GNU
//! sparse maps, with each entry's data read through [`TarReader::data`] or skipped.
//!
//! Why not `tar::Archive` (0.4.46): its PAX parser splits records at newlines instead of honouring
//! each record's length prefix, so a record whose value holds a 0x0A byte (a binary
//! `SCHILY.xattr.*` value such as a `security.capability`, or a file name with a newline, both
//! legal) fails as "malformed pax extension". Worse, the crate uses the same parser to pick `path`,
//! `size`, `uid` and `gid`, so such a record makes it silently fall back to the header fields, and a
//! crafted value can smuggle a forged `path` record past it. It also ends a seekable archive at a
//! truncated entry without saying so. Here PAX records are parsed by their length ([`pax_records`])
//! and the framing decisions (path, link, size, GNU names, sparse maps) are made in one place for
//! every tool.
//!
//! The header block is decoded here (checksum, octal and base-256 numbers, ustar prefix), so this
//! crate needs no `tar` dependency; callers that have the `tar` crate decode the remaining fields
//! (mode, device numbers) with `tar::Header::from_byte_slice(&entry.header)`. That header's own
//! uid, gid, mtime, size and names ignore the PAX records: use [`RawEntry`]'s instead.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use crate::tarcontract::RootfsContract;

/// The tar block size: headers are one block, data is padded to a multiple of it.
pub const BLOCK: usize = 512;
/// Extension headers (PAX, GNU long names) larger than this are refused: hostile input must not
/// exhaust memory.
pub const MAX_EXTENSION: u64 = 1 << 20;
/// Old GNU sparse extension blocks after one header, at most (21 chunks each).
const MAX_SPARSE_BLOCKS: usize = 1 << 11;

/// One entry: its own header block, and what the extension headers before it say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The entry's own header block, as stored (ustar, GNU or v7).
    pub header: [u8; BLOCK],
    /// The type flag (`b'0'`, `b'5'`, …; `b'g'` for a PAX global header, returned as an entry).
    pub typeflag: u8,
    /// PAX `path`, else the GNU long name, else the header's (ustar prefix joined).
    pub path: Vec<u8>,
    /// PAX `linkpath`, else the GNU long link name, else the header's; None when empty.
    pub link: Option<Vec<u8>>,
    /// Bytes of data stored in the tar for this entry (PAX `size`, else the header's).
    pub size: u64,
    /// Offset of the entry's data, counted from where the reader started.
    pub data_pos: u64,
    /// Every record of the PAX header before the entry, (key, value) in record order.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    /// The map of an old GNU sparse entry (type `S`): its data is the chunks, one after another.
    pub sparse: Option<GnuSparse>,
}

/// An old GNU sparse entry's map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GnuSparse {
    /// The file's logical size, holes included.
    pub real_size: u64,
    /// (offset in the file, length) of each stored chunk, in order, not overlapping.
    pub chunks: Vec<(u64, u64)>,
}

impl RawEntry {
    /// The value of the last PAX record named `key` (a later record overrides an earlier one).
    pub fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// (attribute name, value) of every `SCHILY.xattr.NAME` record, in record order.
    pub fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pax.iter().filter_map(|(k, v)| {
            k.strip_prefix(b"SCHILY.xattr.".as_slice())
                .map(|name| (name, v.as_slice()))
        })
    }

    /// PAX `uid`, else the header's; refused unless it fits 32 bits (Linux ids are 32-bit, and a
    /// truncated 2^32 would be root).
    pub fn uid(&self) -> Result<u32, String> {
        self.id(b"uid", 108..116)
    }

    /// PAX `gid`, else the header's; refused unless it fits 32 bits.
    pub fn gid(&self) -> Result<u32, String> {
        self.id(b"gid", 116..124)
    }

    fn id(&self, key: &'static [u8], field: Range<usize>) -> Result<u32, String> {
        let id = self.number(key, field)?;
        u32::try_from(id).map_err(|_| {
            format!(
                "{} {id} does not fit in 32 bits (Linux user and group ids are 32-bit)",
                String::from_utf8_lossy(key)
            )
        })
    }

    /// PAX `mtime` in whole seconds (a fraction is dropped), else the header's; a time before 1970
    /// (negative PAX or base-256) reads as 0.
    pub fn mtime(&self) -> Result<u64, String> {
        if self.pax_value(b"mtime").is_none() && self.header[136] == 0xff {
            return Ok(0); // a negative GNU base-256 number
        }
        self.number(b"mtime", 136..148)
    }

    fn number(&self, key: &'static [u8], field: Range<usize>) -> Result<u64, String> {
        match self.pax_value(key) {
            Some(value) => pax_number(key, value),
            None => numeric(&self.header[field])
                .map_err(|e| format!("bad {} field: {e}", String::from_utf8_lossy(key))),
        }
    }
}

/// Why reading a tar failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are not a (complete) tar: the reason, for a person.
    #[error("{0}")]
    Bad(String),
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            ReadError::Bad(reason) => io::Error::new(io::ErrorKind::InvalidData, reason),
        }
    }
}

fn bad<T>(reason: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Bad(reason.into()))
}

/// (key, value) of one PAX record.
pub type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Parses PAX extended header data, `"LEN KEY=VALUE\n"` records, honouring each LEN (it counts
/// the whole record, its own digits and the newline included), so values may hold any byte,
/// newlines and `=` included. The key ends at the first `=`.
pub fn pax_records(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let err = |what: String| Err(format!("PAX record at byte {at}: {what}"));
        let Some(sp) = rest.iter().take(21).position(|&b| b == b' ') else {
            return err("does not start with a decimal length and a space".into());
        };
        let digits = &rest[..sp];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return err(format!(
                "its length {:?} is not a decimal number",
                String::from_utf8_lossy(digits)
            ));
        }
        // At most 20 digits: parsing may still overflow, which is an error like any other.
        let Some(len) = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return err("its length is too large".into());
        };
        if len > rest.len() {
            return err(format!(
                "its length {len} runs past the end of the PAX header ({} bytes left)",
                rest.len()
            ));
        }
        if len < sp + 3 || rest[len - 1] != b'\n' {
            return err(format!(
                "its length {len} does not match its contents (the byte it points at is not the record's final newline)"
            ));
        }
        let kv = &rest[sp + 1..len - 1];
        let Some(eq) = kv.iter().position(|&b| b == b'=') else {
            return err("has no '='".into());
        };
        out.push((&kv[..eq], &kv[eq + 1..]));
        at += len;
    }
    Ok(out)
}

/// A decimal PAX number; `mtime` may carry a fraction, of which only whole seconds are kept.
pub fn pax_number(key: &[u8], value: &[u8]) -> Result<u64, String> {
    let s = std::str::from_utf8(value).unwrap_or("");
    let int = if key == b"mtime" {
        s.split('.').next().unwrap_or("")
    } else {
        s
    };
    let is_mtime = key == b"mtime";
    let key = String::from_utf8_lossy(key);
    if let Some(magnitude) = int.strip_prefix('-') {
        // A time before 1970 is clamped to 0, as icos-rootfs clamps every mtime into
        // [0, SOURCE_DATE_EPOCH]: every tool reads the same time from the same tar.
        if is_mtime && !magnitude.is_empty() && magnitude.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(0);
        }
        return Err(format!("PAX {key} {s:?} is negative"));
    }
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "PAX {key} {:?} is not a number",
            String::from_utf8_lossy(value)
        ));
    }
    int.parse()
        .map_err(|_| format!("PAX {key} {s:?} does not fit in 64 bits"))
}

/// The bytes of a NUL-terminated header field.
fn cstr(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

/// An octal header number (spaces around it and a NUL after it allowed).
fn octal(field: &[u8]) -> Result<u64, String> {
    let text = cstr(field);
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 8).ok())
        .ok_or_else(|| format!("{:?} is not an octal number", String::from_utf8_lossy(text)))
}

/// A numeric header field: octal, or GNU base-256 (the high bit of the first byte set).
fn numeric(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 == 0 {
        return octal(field);
    }
    let (first, tail) = match field.len() {
        n if n <= 8 => (u64::from(field[0] & 0x7f), &field[1..]),
        n => {
            if field[0] != 0x80 || field[1..n - 8].iter().any(|&b| b != 0) {
                return Err("base-256 number is negative or does not fit in 64 bits".into());
            }
            (0, &field[n - 8..])
        }
    };
    Ok(tail.iter().fold(first, |n, &b| n << 8 | u64::from(b)))
}

fn is_ustar(h: &[u8; BLOCK]) -> bool {
    &h[257..263] == b"ustar\0" && &h[263..265] == b"00"
}

fn is_gnu(h: &[u8; BLOCK]) -> bool {
    &h[257..263] == b"ustar " && &h[263..265] == b" \0"
}

/// The header's name, joined to its ustar prefix.
fn header_path(h: &[u8; BLOCK]) -> Vec<u8> {
    let name = cstr(&h[0..100]);
    if is_ustar(h) {
        let prefix = cstr(&h[345..500]);
        if !prefix.is_empty() {
            return [prefix, b"/", name].concat();
        }
    }
    name.to_vec()
}

fn header_link(h: &[u8; BLOCK]) -> Option<Vec<u8>> {
    (h[157] != 0).then(|| cstr(&h[157..257]).to_vec())
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    octal(&h[148..156]) == Ok(sum)
}

/// Reads a tar entry by entry. Data the caller does not read is skipped: by reading
/// ([`TarReader::new`], any stream) or by seeking ([`TarReader::seekable`]).
pub struct TarReader<R> {
    r: R,
    /// Relative seek, when the reader can.
    seek: Option<fn(&mut R, i64) -> io::Result<u64>>,
    /// Bytes consumed from `r` since the start.
    at: u64,
    /// Where the next header starts.
    next: u64,
    /// Where the current entry's data ends.
    data_end: u64,
    end_marker_required: bool,
    contract: Option<RootfsContract>,
    done: bool,
}

/// Data after the end-of-archive marker read by [`TarReader::finish`], at most (writers pad to a
/// record, GNU tar's default is 10 KiB; a compressed layer could otherwise decompress forever).
pub const MAX_TRAILING: u64 = 1 << 20;

impl<R: Read> TarReader<R> {
    /// Reads any stream; skipped data is read and discarded (so a hashing reader sees every byte).
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            seek: None,
            at: 0,
            next: 0,
            data_end: 0,
            end_marker_required: false,
            contract: None,
            done: false,
        }
    }

    /// Checks the rootfs tar contract on every entry ([`RootfsContract`]): a breach is an error
    /// of [`TarReader::next_entry`]. For readers of icos-rootfs's output.
    pub fn rootfs_contract(mut self) -> Self {
        self.contract = Some(RootfsContract::default());
        self
    }

    /// Reads what follows the end-of-archive marker, at most [`MAX_TRAILING`] bytes (so a
    /// verifying reader under it sees the whole stream), and returns the reader.
    pub fn finish(mut self) -> Result<R, ReadError> {
        let n = io::copy(&mut (&mut self.r).take(MAX_TRAILING + 1), &mut io::sink())?;
        if n > MAX_TRAILING {
            return bad(format!(
                "more than {MAX_TRAILING} bytes follow the end-of-archive marker"
            ));
        }
        Ok(self.r)
    }

    /// Makes a stream that ends cleanly between entries, without the end-of-archive marker (a zero
    /// block), an error ("truncated") instead of the end of the archive.
    pub fn require_end_marker(mut self) -> Self {
        self.end_marker_required = true;
        self
    }

    pub fn into_inner(self) -> R {
        self.r
    }

    /// Reads up to `buf.len()` bytes; returns how many (short only at the end of the stream).
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.at += got as u64;
        Ok(got)
    }

    /// Moves forward to `pos`, checking that the stream really reaches it.
    fn skip_to(&mut self, pos: u64) -> Result<(), ReadError> {
        if pos <= self.at {
            return Ok(());
        }
        let gap = pos - self.at;
        let reached = match self.seek {
            Some(seek) => {
                // Seeking past the end succeeds silently: read the last byte before `pos`.
                let delta = i64::try_from(gap - 1)
                    .map_err(|_| ReadError::Bad("an entry is too large to skip".into()))?;
                if delta > 0 {
                    seek(&mut self.r, delta)?;
                }
                self.at = pos - 1;
                self.read_full(&mut [0u8; 1])? == 1
            }
            None => {
                let n = io::copy(&mut (&mut self.r).take(gap), &mut io::sink())?;
                self.at += n;
                n == gap
            }
        };
        if !reached {
            return bad("the tar ends inside an entry's data: it is truncated");
        }
        Ok(())
    }

    fn read_extension(&mut self, size: u64, what: &str) -> Result<Vec<u8>, ReadError> {
        if size > MAX_EXTENSION {
            return bad(format!(
                "a {what} of {size} bytes is larger than the {MAX_EXTENSION} bytes accepted"
            ));
        }
        let mut v = vec![0u8; size as usize];
        if self.read_full(&mut v)? < v.len() {
            return bad(format!("the tar ends inside a {what}: it is truncated"));
        }
        self.next += size.div_ceil(BLOCK as u64) * BLOCK as u64;
        Ok(v)
    }

    /// The next entry, or None at the end-of-archive marker (a zero block) or, unless
    /// [`TarReader::require_end_marker`], where the stream ends between entries.
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>, ReadError> {
        self.data_end = 0;
        if self.done {
            return Ok(None);
        }
        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let start = self.next;
            self.skip_to(start)?;
            let pending = pax.is_some() || long_name.is_some() || long_link.is_some();
            let mut header = [0u8; BLOCK];
            match self.read_full(&mut header)? {
                0 if pending => {
                    return bad("the tar ends after an extension header, before the entry it describes: it is truncated")
                }
                0 if self.end_marker_required => {
                    return bad("the tar ends without its end-of-archive marker: it is truncated")
                }
                0 => {
                    self.done = true;
                    return Ok(None);
                }
                BLOCK => {}
                _ => return bad("the tar ends inside a header: it is truncated"),
            }
            if header.iter().all(|&b| b == 0) {
                if pending {
                    return bad("an extension header is not followed by an entry");
                }
                self.done = true;
                return Ok(None);
            }
            if !checksum_ok(&header) {
                return bad(format!(
                    "the header at byte {start} has a wrong checksum: not a tar, or corrupt"
                ));
            }
            let stored = numeric(&header[124..136])
                .map_err(|e| ReadError::Bad(format!("bad size field: {e}")))?;
            self.next = start + BLOCK as u64;
            let typeflag = header[156];
            match typeflag {
                b'x' => {
                    if pax.is_some() {
                        return bad("two PAX headers describe the same entry");
                    }
                    pax = Some(self.read_extension(stored, "PAX header")?);
                    continue;
                }
                b'L' | b'K' => {
                    let (slot, what) = if typeflag == b'L' {
                        (&mut long_name, "GNU long name")
                    } else {
                        (&mut long_link, "GNU long link name")
                    };
                    if slot.is_some() {
                        return bad(format!("two {what}s describe the same entry"));
                    }
                    let mut v = self.read_extension(stored, what)?;
                    while v.last() == Some(&0) {
                        v.pop();
                    }
                    *slot = Some(v);
                    continue;
                }
                _ => {}
            }
            let records = match &pax {
                Some(data) => pax_records(data)
                    .map_err(ReadError::Bad)?
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect(),
                None => Vec::new(),
            };
            let mut e = RawEntry {
                header,
                typeflag,
                path: long_name.take().unwrap_or_else(|| header_path(&header)),
                link: long_link.take().or_else(|| header_link(&header)),
                size: stored,
                data_pos: 0,
                pax: records,
                sparse: None,
            };
            if let Some(path) = e.pax_value(b"path").map(<[u8]>::to_vec) {
                e.path = path;
            }
            if let Some(link) = e.pax_value(b"linkpath").map(<[u8]>::to_vec) {
                e.link = Some(link);
            }
            if let Some(size) = e.pax_value(b"size") {
                e.size = pax_number(b"size", size).map_err(ReadError::Bad)?;
            }
            if typeflag == b'S' {
                e.sparse = Some(self.read_gnu_sparse(&header, e.size)?);
            }
            e.data_pos = self.next;
            self.data_end = e
                .data_pos
                .checked_add(e.size)
                .ok_or_else(|| ReadError::Bad("entry size overflows".into()))?;
            self.next = e
                .size
                .div_ceil(BLOCK as u64)
                .checked_mul(BLOCK as u64)
                .and_then(|padded| e.data_pos.checked_add(padded))
                .ok_or_else(|| ReadError::Bad("entry size overflows".into()))?;
            if let Some(contract) = &mut self.contract {
                if typeflag != b'g' {
                    contract
                        .check(&e.path, typeflag == b'5')
                        .map_err(ReadError::Bad)?;
                }
            }
            return Ok(Some(e));
        }
    }

    /// The map of an old GNU sparse entry: four chunks in the header, 21 in each extension block
    /// that follows it (before the data).
    fn read_gnu_sparse(
        &mut self,
        header: &[u8; BLOCK],
        stored: u64,
    ) -> Result<GnuSparse, ReadError> {
        if !is_gnu(header) {
            return bad("a GNU sparse entry (type 'S') without a GNU header");
        }
        let real_size = numeric(&header[483..495])
            .map_err(|e| ReadError::Bad(format!("bad sparse real size field: {e}")))?;
        let mut chunks = Vec::new();
        add_sparse_chunks(&header[386..482], &mut chunks)?;
        let mut extended = header[482] == 1;
        let mut blocks = 0;
        while extended {
            blocks += 1;
            if blocks > MAX_SPARSE_BLOCKS {
                return bad(format!(
                    "a GNU sparse map of more than {MAX_SPARSE_BLOCKS} extension blocks"
                ));
            }
            let mut ext = [0u8; BLOCK];
            if self.read_full(&mut ext)? < BLOCK {
                return bad("the tar ends inside a GNU sparse map: it is truncated");
            }
            self.next += BLOCK as u64;
            add_sparse_chunks(&ext[..504], &mut chunks)?;
            extended = ext[504] == 1;
        }
        let (mut end, mut total) = (0u64, 0u64);
        for &(off, len) in &chunks {
            let chunk_end = off
                .checked_add(len)
                .filter(|&e| off >= end && e <= real_size);
            let Some(chunk_end) = chunk_end else {
                return bad(format!("GNU sparse map chunk {off}+{len} overlaps the previous one or ends past the size {real_size}"));
            };
            end = chunk_end;
            total = total.saturating_add(len);
        }
        if total != stored {
            return bad(format!(
                "the GNU sparse map lists {total} data bytes but the entry stores {stored}"
            ));
        }
        Ok(GnuSparse { real_size, chunks })
    }

    /// The current entry's data (what the last [`TarReader::next_entry`] returned); reads end at
    /// its size, or early if the stream is truncated.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    /// The rest of the current entry's data in memory, if it is at most `max` bytes (for small
    /// metadata such as a PAX global header; parse it with [`pax_records`]).
    pub fn data_to_vec(&mut self, max: u64) -> Result<Vec<u8>, ReadError> {
        let left = self.data_end.saturating_sub(self.at);
        if left > max {
            return bad(format!(
                "{left} bytes of data, more than the {max} bytes accepted here"
            ));
        }
        let mut v = vec![0u8; left as usize];
        if self.read_full(&mut v)? < v.len() {
            return bad("the tar ends inside an entry's data: it is truncated");
        }
        Ok(v)
    }
}

fn add_sparse_chunks(area: &[u8], chunks: &mut Vec<(u64, u64)>) -> Result<(), ReadError> {
    for slot in area.chunks_exact(24) {
        if slot[0] == 0 || slot[12] == 0 {
            continue; // an unused slot
        }
        let field = |f: &[u8]| {
            numeric(f).map_err(|e| ReadError::Bad(format!("bad GNU sparse map field: {e}")))
        };
        chunks.push((field(&slot[..12])?, field(&slot[12..])?));
    }
    Ok(())
}

impl<R: Read + Seek> TarReader<R> {
    /// Reads a seekable input; skipped data is seeked over (relative seeks only).
    pub fn seekable(r: R) -> Self {
        TarReader {
            seek: Some(|r: &mut R, delta| r.seek(SeekFrom::Current(delta))),
            ..TarReader::new(r)
        }
    }
}

/// The data of the current entry, as a reader (see [`TarReader::data`]).
pub struct EntryData<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = &mut *self.reader;
        let want = (buf.len() as u64).min(t.data_end.saturating_sub(t.at)) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = t.r.read(&mut buf[..want])?;
        t.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use icos_testsupport::pax_record;
    use std::io::Cursor;

    fn octal_field(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()] = 0;
    }

    fn seal(h: &mut [u8; BLOCK]) {
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    /// A ustar header written by hand (the `tar` crate is what this module replaces).
    fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        octal_field(&mut h[100..108], 0o644);
        octal_field(&mut h[108..116], 7);
        octal_field(&mut h[116..124], 8);
        octal_field(&mut h[124..136], size);
        octal_field(&mut h[136..148], 1_600_000_000);
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        seal(&mut h);
        h
    }

    fn push(tar: &mut Vec<u8>, header: [u8; BLOCK], data: &[u8]) {
        tar.extend_from_slice(&header);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(BLOCK) * BLOCK, 0);
    }

    fn push_entry(tar: &mut Vec<u8>, name: &[u8], typeflag: u8, data: &[u8], pax: &[u8]) {
        if !pax.is_empty() {
            push(tar, header(b"./@PaxHeader", b'x', pax.len() as u64), pax);
        }
        push(tar, header(name, typeflag, data.len() as u64), data);
    }

    fn end(tar: &mut Vec<u8>) {
        tar.extend_from_slice(&[0u8; 2 * BLOCK]);
    }

    /// Every entry of `tar`, with its data read (`read_data`) or skipped, by both readers, which
    /// must agree.
    fn read_all(tar: &[u8], read_data: bool) -> Result<Vec<(RawEntry, Vec<u8>)>, String> {
        fn run<R: Read>(
            mut r: TarReader<R>,
            read_data: bool,
        ) -> Result<Vec<(RawEntry, Vec<u8>)>, String> {
            let mut out = Vec::new();
            while let Some(e) = r.next_entry().map_err(|e| e.to_string())? {
                let mut data = Vec::new();
                if read_data {
                    r.data().read_to_end(&mut data).unwrap();
                }
                out.push((e, data));
            }
            Ok(out)
        }
        let streamed = run(TarReader::new(tar), read_data);
        let seeked = run(TarReader::seekable(Cursor::new(tar)), read_data);
        assert_eq!(streamed, seeked, "stream and seek readers disagree");
        streamed
    }

    #[test]
    fn pax_values_may_contain_newlines_and_equals() {
        let rec = b"30 SCHILY.xattr.user.a=x\ny\n\0z\n13 mtime=5.5\n";
        let r = pax_records(rec).unwrap();
        assert_eq!(r[0], (&b"SCHILY.xattr.user.a"[..], &b"x\ny\n\0z"[..]));
        assert_eq!(pax_number(r[1].0, r[1].1), Ok(5));

        let data = [
            pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
            pax_record("path", b"dir/with\nnewline=and equals"),
            pax_record("comment", b"\n"),
            pax_record("empty", b""),
        ]
        .concat();
        assert_eq!(
            pax_records(&data).unwrap(),
            [
                (&b"SCHILY.xattr.user.nl"[..], &b"a\nb=c"[..]),
                (b"path", b"dir/with\nnewline=and equals"),
                (b"comment", b"\n"),
                (b"empty", b""),
            ]
        );
        assert_eq!(pax_records(b"").unwrap(), []);
    }

    #[test]
    fn wrong_record_lengths_are_errors_not_panics() {
        for (data, says) in [
            (&b"99 path=x\n"[..], "runs past the end"),
            (b"11 path=x\n", "runs past the end"),
            (b"8 path=x\n", "does not match its contents"),
            (b"2 \n", "does not match its contents"),
            (b"0 \n", "does not match its contents"),
            (b"x path=x\n", "is not a decimal number"),
            (b"+9 path=x\n", "is not a decimal number"),
            (b" path=x\n", "is not a decimal number"),
            (b"99999999999999999999 path=x\n", "too large"),
            (b"123456789012345678901 path=x\n", "does not start with"),
            (b"path=x\n", "does not start with"),
            (b"7 path\n", "has no '='"),
            // The length points at a newline inside the value: what follows is no record.
            (b"6 k=a\nb\n", "at byte 6: does not start with"),
            // A correct record followed by NUL padding.
            (b"9 path=x\n\0\0\0", "at byte 9: does not start with"),
        ] {
            let err = pax_records(data).unwrap_err();
            assert!(err.starts_with("PAX record at byte "), "{err}");
            assert!(
                err.contains(says),
                "{data:?}: {err:?} does not say {says:?}"
            );
        }
        assert_eq!(
            pax_number(b"size", b"12x"),
            Err("PAX size \"12x\" is not a number".into())
        );
        // Before 1970: 0, as icos-rootfs clamps it; other negative numbers are refused, for what
        // they are.
        assert_eq!(pax_number(b"mtime", b"-1.5"), Ok(0));
        assert_eq!(pax_number(b"mtime", b"-86400"), Ok(0));
        assert!(pax_number(b"mtime", b"-").is_err());
        assert_eq!(
            pax_number(b"size", b"-5"),
            Err("PAX size \"-5\" is negative".into())
        );
        assert!(pax_number(b"uid", b"").is_err());
        assert!(pax_number(b"uid", b"99999999999999999999")
            .unwrap_err()
            .contains("64 bits"));
    }

    #[test]
    fn reads_pax_records_gnu_names_and_data() {
        let long: Vec<u8> = [&b"./"[..], &[b'd'; 150], b"/file"].concat();
        let mut tar = Vec::new();
        push_entry(&mut tar, b"./", b'5', b"", b"");
        // The xattr record sorts first and holds a newline: path, mtime and uid after it still count.
        let pax = [
            pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
            pax_record("SCHILY.xattr.user.z", b"\n"),
            pax_record("mtime", b"1234.5"),
            pax_record("path", &long),
            pax_record("uid", b"3000000"),
        ]
        .concat();
        push_entry(&mut tar, b"./truncated-name", b'0', b"hello", &pax);
        let gnu_name = [&b"./gnu/"[..], &[b'g'; 120]].concat();
        push(
            &mut tar,
            header(b"././@LongLink", b'L', gnu_name.len() as u64 + 1),
            &[&gnu_name[..], b"\0"].concat(),
        );
        push(&mut tar, header(b"./gnu/ggg", b'0', 3), b"gnu");
        let target = b"target\nwith newline".repeat(8);
        push_entry(
            &mut tar,
            b"./link",
            b'2',
            b"",
            &pax_record("linkpath", &target),
        );
        end(&mut tar);

        for read_data in [true, false] {
            let entries = read_all(&tar, read_data).unwrap();
            assert_eq!(entries.len(), 4);
            let (root, _) = &entries[0];
            assert_eq!(
                (root.typeflag, &root.path[..], root.size),
                (b'5', &b"./"[..], 0)
            );
            assert_eq!(root.link, None);
            assert_eq!(
                (root.uid(), root.gid(), root.mtime()),
                (Ok(7), Ok(8), Ok(1_600_000_000))
            );

            let (file, data) = &entries[1];
            assert_eq!(file.path, long);
            assert_eq!(file.size, 5);
            assert_eq!(
                file.xattrs().collect::<Vec<_>>(),
                [(&b"user.nl"[..], &b"a\nb=c"[..]), (b"user.z", b"\n")]
            );
            assert_eq!(file.mtime(), Ok(1234));
            assert_eq!(file.uid(), Ok(3_000_000));
            assert_eq!(file.gid(), Ok(8));
            assert_eq!(file.pax.len(), 5);
            assert_eq!(file.data_pos, 4 * BLOCK as u64);
            assert_eq!(&tar[file.data_pos as usize..][..5], b"hello");
            if read_data {
                assert_eq!(data, b"hello");
            }

            let (gnu, data) = &entries[2];
            assert_eq!(gnu.path, gnu_name);
            if read_data {
                assert_eq!(data, b"gnu");
            }
            let (link, _) = &entries[3];
            assert_eq!(link.link.as_deref(), Some(&target[..]));
        }
    }

    #[test]
    fn a_wrong_pax_length_in_an_archive_is_an_error() {
        let mut tar = Vec::new();
        push_entry(
            &mut tar,
            b"./f",
            b'0',
            b"x",
            b"12 path=./f\n99 SCHILY.xattr.user.a=1\n",
        );
        end(&mut tar);
        let err = read_all(&tar, true).unwrap_err();
        assert!(
            err.contains("PAX record at byte 12") && err.contains("runs past"),
            "{err}"
        );
        let mut tar = Vec::new();
        push_entry(&mut tar, b"./f", b'0', b"x", &pax_record("size", b"1x"));
        end(&mut tar);
        assert!(read_all(&tar, true)
            .unwrap_err()
            .contains("PAX size \"1x\" is not a number"));
    }

    #[test]
    fn pax_size_frames_the_data() {
        let mut tar = Vec::new();
        // The header says 0 bytes (as writers do when the size needs PAX); the record says 600.
        push(
            &mut tar,
            header(b"./@PaxHeader", b'x', 12),
            &pax_record("size", b"600"),
        );
        tar.extend_from_slice(&header(b"./big", b'0', 0));
        tar.extend_from_slice(&[9u8; 1024]);
        push_entry(&mut tar, b"./after", b'0', b"a", b"");
        end(&mut tar);
        let entries = read_all(&tar, true).unwrap();
        assert_eq!(entries[0].1, [9u8; 600]);
        assert_eq!(entries[1].0.path, b"./after");
        assert_eq!(entries[1].1, b"a");
    }

    #[test]
    fn truncated_archives_are_errors_and_never_panic() {
        let mut tar = Vec::new();
        push_entry(&mut tar, b"./", b'5', b"", b"");
        push_entry(
            &mut tar,
            b"./a",
            b'0',
            &[1u8; 1000],
            &pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
        );
        let boundary = tar.len();
        push_entry(&mut tar, b"./b", b'0', b"b", b"");
        end(&mut tar);
        // Layout: root, x header + data, a's header + 2 blocks, b's header + 1 block, end.
        let says = |cut: usize, strict: bool| -> Result<usize, String> {
            let mut r = TarReader::new(&tar[..cut]);
            if strict {
                r = r.require_end_marker();
            }
            let mut n = 0;
            while r.next_entry().map_err(|e| e.to_string())?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert!(says(100, false)
            .unwrap_err()
            .contains("ends inside a header"));
        assert!(says(BLOCK + 10, false)
            .unwrap_err()
            .contains("ends inside a header"));
        assert!(says(2 * BLOCK + 10, false)
            .unwrap_err()
            .contains("ends inside a PAX header"));
        assert!(says(3 * BLOCK, false)
            .unwrap_err()
            .contains("after an extension header"));
        assert!(says(4 * BLOCK + 10, false)
            .unwrap_err()
            .contains("inside an entry's data"));
        assert!(says(boundary - 1, false)
            .unwrap_err()
            .contains("inside an entry's data"));
        // Cut between entries: the end of the archive, unless the marker is required.
        assert_eq!(says(boundary, false), Ok(2));
        assert!(says(boundary, true)
            .unwrap_err()
            .contains("end-of-archive marker"));
        assert_eq!(says(0, false), Ok(0));
        assert_eq!(says(tar.len(), true), Ok(3));

        // The seeking reader notices data cut short too.
        let mut r = TarReader::seekable(Cursor::new(&tar[..boundary - 1]));
        r.next_entry().unwrap();
        r.next_entry().unwrap();
        assert!(r
            .next_entry()
            .unwrap_err()
            .to_string()
            .contains("inside an entry's data"));
        // Reading truncated data yields what is there.
        let mut r = TarReader::new(&tar[..4 * BLOCK + 10]);
        r.next_entry().unwrap();
        r.next_entry().unwrap();
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        assert_eq!(data, [1u8; 10]);

        // No cut anywhere panics, in either reader.
        for cut in 0..tar.len() {
            let _ = read_all(&tar[..cut], cut % 2 == 0);
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let mut tar = Vec::new();
        push_entry(&mut tar, b"./a", b'0', b"a", b"");
        end(&mut tar);
        let mut bad_sum = tar.clone();
        bad_sum[3] = b'x';
        assert!(read_all(&bad_sum, true)
            .unwrap_err()
            .contains("wrong checksum"));
        let mut bad_size = tar.clone();
        bad_size[124..136].copy_from_slice(b"0000000000z\0");
        seal((&mut bad_size[..BLOCK]).try_into().unwrap());
        assert!(read_all(&bad_size, true)
            .unwrap_err()
            .contains("bad size field"));
        let mut two = Vec::new();
        push(&mut two, header(b"x", b'x', 10), &pax_record("a", b"12"));
        push_entry(&mut two, b"./a", b'0', b"", &pax_record("a", b"1"));
        end(&mut two);
        assert!(read_all(&two, true)
            .unwrap_err()
            .contains("two PAX headers"));
        let mut dangling = Vec::new();
        push(&mut dangling, header(b"x", b'x', 6), &pax_record("a", b"1"));
        end(&mut dangling);
        assert!(read_all(&dangling, true)
            .unwrap_err()
            .contains("not followed by an entry"));
    }

    #[test]
    fn base256_numbers() {
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 1, 2]), Ok(0x102));
        let mut size = [0u8; 12];
        size[0] = 0x80;
        size[4..].copy_from_slice(&(10u64 << 33).to_be_bytes());
        assert_eq!(numeric(&size), Ok(10 << 33));
        size[1] = 1;
        assert!(numeric(&size).is_err());
        assert!(numeric(&[0xff; 12]).is_err());
        assert_eq!(numeric(b" 17 \0\0\0\0"), Ok(0o17));
        assert!(numeric(b"\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn old_gnu_sparse_maps() {
        let mut h = header(b"./sparse", b'S', 5 * 3);
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
        // Five chunks of three bytes at 0, 1000, 2000, …: four in the header, one in an extension.
        let chunk = |slot: &mut [u8], i: u64| {
            octal_field(&mut slot[..12], i * 1000);
            octal_field(&mut slot[12..24], 3);
        };
        for i in 0..4 {
            chunk(&mut h[386 + 24 * i..][..24], i as u64);
        }
        h[482] = 1;
        octal_field(&mut h[483..495], 5000);
        seal(&mut h);
        let mut ext = [0u8; BLOCK];
        chunk(&mut ext[..24], 4);
        let mut tar = Vec::new();
        tar.extend_from_slice(&h);
        tar.extend_from_slice(&ext);
        tar.extend_from_slice(b"aaabbbcccdddeee");
        tar.resize(3 * BLOCK, 0);
        push_entry(&mut tar, b"./after", b'0', b"x", b"");
        end(&mut tar);
        let entries = read_all(&tar, true).unwrap();
        let (s, data) = &entries[0];
        let map = s.sparse.as_ref().unwrap();
        assert_eq!(map.real_size, 5000);
        assert_eq!(
            map.chunks,
            (0..5).map(|i| (i * 1000, 3)).collect::<Vec<_>>()
        );
        assert_eq!(s.data_pos, 2 * BLOCK as u64);
        assert_eq!(data, b"aaabbbcccdddeee");
        assert_eq!(entries[1].0.path, b"./after");

        // A map that lists more data than the entry stores is refused.
        let mut wrong = tar.clone();
        octal_field(&mut wrong[124..136], 14);
        seal((&mut wrong[..BLOCK]).try_into().unwrap());
        assert!(read_all(&wrong, true)
            .unwrap_err()
            .contains("lists 15 data bytes"));
    }
}
