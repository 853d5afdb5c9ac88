//! Reading packaged images (`*.tar.zst`, or a plain tar) as streams of members, with GNU sparse
//! members expanded on the fly.
//!
//! Sparse formats: PAX 1.0 (`GNU.sparse.major=1`, `GNU.sparse.minor=0`: the data starts with a
//! decimal map `count\n offset\n size\n …` padded to 512 bytes, followed by the data chunks),
//! PAX 0.1 (`GNU.sparse.map=off,size,…`) and old GNU (`S` entries, whose map the tar reader
//! returns). Holes are never materialised: [`MemberReader::next_piece`] reports them as a length
//! of zeros.
//!
//! The archive is read with icos-common's tar reader, not `tar::Archive`: the tar crate splits PAX
//! records at newlines, so a package (or a rootfs tar handed to diffoscope) whose PAX header holds
//! a value with a 0x0A byte (a binary xattr, a file name) could not be read.

use std::collections::BTreeSet;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use icos_common::tarread::{RawEntry, TarReader};

use crate::ext4map::BlockSource;
use crate::DiffError;

/// The decompressed stream of a package.
pub type PackageStream = Box<dyn Read>;

/// A package opened for reading its members in order.
pub struct Package {
    path: PathBuf,
    archive: TarReader<PackageStream>,
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Package {
    /// Opens `path`: zstd-compressed when it starts with the zstd magic, a plain tar otherwise.
    pub fn open(path: &Path) -> Result<Self, DiffError> {
        let mut f = icos_common::open_regular(path).map_err(|e| DiffError::read(path, e))?;
        let mut magic = [0u8; 4];
        let n = read_full(&mut f, &mut magic).map_err(|e| DiffError::read(path, e))?;
        let head = io::Cursor::new(magic[..n].to_vec());
        let raw = BufReader::with_capacity(1 << 16, head.chain(f));
        let stream: PackageStream = if magic[..n] == ZSTD_MAGIC {
            Box::new(zstd::stream::read::Decoder::new(raw).map_err(|e| DiffError::read(path, e))?)
        } else {
            Box::new(raw)
        };
        Ok(Package {
            path: path.to_path_buf(),
            archive: TarReader::new(stream),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The members (regular files) in archive order.
    pub fn members(&mut self) -> Result<Members<'_>, DiffError> {
        Ok(Members {
            path: self.path.clone(),
            archive: &mut self.archive,
        })
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Iterator over the regular-file members of a [`Package`].
pub struct Members<'a> {
    path: PathBuf,
    archive: &'a mut TarReader<PackageStream>,
}

impl Members<'_> {
    /// The next regular-file member, or `None` at the end of the archive.
    pub fn next_member(&mut self) -> Result<Option<MemberReader<'_>>, DiffError> {
        loop {
            let entry = self
                .archive
                .next_entry()
                .map_err(|e| self.err(format!("not a readable tar: {e}")))?;
            let Some(entry) = entry else {
                return Ok(None);
            };
            let t = tar::EntryType::new(entry.typeflag);
            if !(t.is_file() || t.is_gnu_sparse() || t == tar::EntryType::Continuous) {
                continue;
            }
            return MemberReader::new(&self.path, self.archive, entry).map(Some);
        }
    }

    fn err(&self, message: String) -> DiffError {
        DiffError::malformed(&self.path, message)
    }
}

/// A piece of a member's logical content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// `n` bytes were read into the caller's buffer.
    Data(usize),
    /// The next `n` bytes are a hole (zeros).
    Zeros(u64),
    End,
}

enum Layout {
    Plain,
    Sparse { map: Vec<(u64, u64)>, idx: usize },
}

/// The logical content of one member: plain data, or a sparse file with its holes.
pub struct MemberReader<'a> {
    path: PathBuf,
    archive: &'a mut TarReader<PackageStream>,
    name: String,
    size: u64,
    pos: u64,
    layout: Layout,
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<'a> MemberReader<'a> {
    fn new(
        path: &Path,
        archive: &'a mut TarReader<PackageStream>,
        entry: RawEntry,
    ) -> Result<Self, DiffError> {
        let stored = entry.size;
        let mut tar_name = String::from_utf8_lossy(&entry.path).into_owned();
        let (mut major, mut minor, mut name, mut realsize, mut map01, mut size01) =
            (None, None, None, None, None, None);
        let mut old_style = false;
        for (k, v) in &entry.pax {
            let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) else {
                continue;
            };
            match k {
                "GNU.sparse.major" => major = Some(v.to_string()),
                "GNU.sparse.minor" => minor = Some(v.to_string()),
                "GNU.sparse.name" => name = Some(v.to_string()),
                "GNU.sparse.realsize" => realsize = Some(v.to_string()),
                "GNU.sparse.size" => size01 = Some(v.to_string()),
                "GNU.sparse.map" => map01 = Some(v.to_string()),
                "GNU.sparse.offset" | "GNU.sparse.numbytes" => old_style = true,
                _ => {}
            }
        }
        if let Some(n) = &name {
            tar_name = n.clone();
        }
        let clean = tar_name.trim_start_matches("./").to_string();
        let bad = |m: String| DiffError::malformed(path, format!("member {clean}: {m}"));
        if old_style {
            return Err(bad("uses GNU sparse format 0.0 (GNU.sparse.offset/numbytes records), which is not supported: repack with --sparse-version=1.0".into()));
        }
        let mut reader = MemberReader {
            path: path.to_path_buf(),
            archive,
            name: clean.clone(),
            size: stored,
            pos: 0,
            layout: Layout::Plain,
        };
        match (major.as_deref(), minor.as_deref()) {
            (None, None) if map01.is_none() => {
                // plain member, or an old GNU sparse member (its map is in the headers)
                if let Some(sparse) = entry.sparse {
                    reader.finish_sparse(sparse.chunks, sparse.real_size, stored)?;
                }
            }
            (Some("1"), Some("0")) => {
                let real = realsize.as_deref().and_then(parse_u64).ok_or_else(|| {
                    bad("PAX sparse 1.0 member without a valid GNU.sparse.realsize".into())
                })?;
                let (map, map_bytes) = reader.read_map_1_0(stored)?;
                reader.finish_sparse(map, real, stored - map_bytes)?;
            }
            (None, None) | (Some("0"), Some("1")) => {
                let real = size01
                    .or(realsize)
                    .as_deref()
                    .and_then(parse_u64)
                    .ok_or_else(|| {
                        bad("PAX sparse 0.1 member without a valid GNU.sparse.size".into())
                    })?;
                let nums: Option<Vec<u64>> = map01
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_u64)
                    .collect();
                let nums = nums
                    .ok_or_else(|| bad("GNU.sparse.map is not a list of decimal numbers".into()))?;
                if nums.len() % 2 != 0 {
                    return Err(bad("GNU.sparse.map has an odd number of values".into()));
                }
                let map = nums.chunks(2).map(|c| (c[0], c[1])).collect();
                reader.finish_sparse(map, real, stored)?;
            }
            (ma, mi) => {
                return Err(bad(format!(
                    "unsupported GNU sparse format {}.{}",
                    ma.unwrap_or("?"),
                    mi.unwrap_or("?")
                )));
            }
        }
        Ok(reader)
    }

    /// Reads the PAX 1.0 sparse map at the start of the data: returns the map and its padded size.
    fn read_map_1_0(&mut self, stored: u64) -> Result<(Vec<(u64, u64)>, u64), DiffError> {
        let name = self.name.clone();
        let bad =
            |m: &str| DiffError::malformed(&self.path, format!("member {name}: sparse map: {m}"));
        let mut text = Vec::new();
        let mut nums: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        let mut block = [0u8; 512];
        let mut consumed = 0u64;
        loop {
            if consumed + 512 > stored {
                return Err(bad("ends before the map is complete"));
            }
            let n = read_full(&mut self.archive.data(), &mut block)
                .map_err(|e| DiffError::read(&self.path, e))?;
            if n != 512 {
                return Err(bad("the archive ends inside the map"));
            }
            consumed += 512;
            text.extend_from_slice(&block);
            // parse every complete line so far
            while let Some(nl) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=nl).collect();
                let s = std::str::from_utf8(&line[..line.len() - 1])
                    .map_err(|_| bad("not decimal text"))?;
                let v =
                    parse_u64(s).ok_or_else(|| bad(&format!("{s:?} is not a decimal number")))?;
                match want {
                    None => {
                        // every map entry takes at least 4 bytes of text ("0\n0\n")
                        if v.saturating_mul(4) > stored {
                            return Err(bad(&format!(
                                "declares {v} chunks, more than the member can hold"
                            )));
                        }
                        want = Some(v);
                    }
                    Some(_) => nums.push(v),
                }
                if want == Some(nums.len() as u64 / 2) && nums.len().is_multiple_of(2) {
                    let map = nums.chunks(2).map(|c| (c[0], c[1])).collect();
                    return Ok((map, consumed));
                }
            }
            if text.len() > 64 {
                return Err(bad("a line is longer than any decimal number"));
            }
        }
    }

    fn finish_sparse(
        &mut self,
        map: Vec<(u64, u64)>,
        real: u64,
        data_bytes: u64,
    ) -> Result<(), DiffError> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(off, len) in &map {
            let e = off.checked_add(len);
            if off < end || e.is_none_or(|e| e > real) {
                return Err(DiffError::malformed(
                    &self.path,
                    format!("member {}: sparse map chunk {off}+{len} overlaps the previous one or ends past the size {real}", self.name),
                ));
            }
            end = e.unwrap_or(end);
            total += len;
        }
        if total != data_bytes {
            return Err(DiffError::malformed(
                &self.path,
                format!("member {}: sparse map lists {total} data bytes but the member stores {data_bytes}", self.name),
            ));
        }
        self.size = real;
        self.layout = Layout::Sparse { map, idx: 0 };
        Ok(())
    }

    /// The member's name without a leading `./` (`GNU.sparse.name` for PAX sparse members).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The logical size (holes included).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next piece of content, at most `buf.len()` data bytes.
    pub fn next_piece(&mut self, buf: &mut [u8]) -> Result<Piece, DiffError> {
        if self.pos >= self.size {
            return Ok(Piece::End);
        }
        let data_len = match &mut self.layout {
            Layout::Plain => self.size - self.pos,
            Layout::Sparse { map, idx } => loop {
                match map.get(*idx) {
                    Some(&(off, len)) if self.pos >= off + len => *idx += 1,
                    Some(&(off, len)) if self.pos >= off => break off + len - self.pos,
                    Some(&(off, _)) => {
                        let n = off - self.pos;
                        self.pos = off;
                        return Ok(Piece::Zeros(n));
                    }
                    None => {
                        let n = self.size - self.pos;
                        self.pos = self.size;
                        return Ok(Piece::Zeros(n));
                    }
                }
            },
        };
        let want = (buf.len() as u64).min(data_len) as usize;
        let n = loop {
            match self.archive.data().read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DiffError::read(&self.path, e)),
            }
        };
        if n == 0 {
            return Err(DiffError::malformed(
                &self.path,
                format!(
                    "member {}: truncated at byte {} of {}",
                    self.name, self.pos, self.size
                ),
            ));
        }
        self.pos += n as u64;
        Ok(Piece::Data(n))
    }
}

/// The blocks of a filesystem inside member `member` of a package, from member offset `start`:
/// each [`BlockSource::pass`] decodes the package again, up to the last block wanted.
pub struct MemberBlocks {
    pub package: PathBuf,
    pub member: String,
    pub start: u64,
}

impl MemberBlocks {
    /// The first `len` bytes of the filesystem (fewer if the member ends first).
    pub fn head(&mut self, len: u64) -> Result<Vec<u8>, DiffError> {
        const UNIT: u64 = 4096;
        let wanted: BTreeSet<u64> = (0..len.div_ceil(UNIT)).collect();
        let mut out = Vec::with_capacity(len as usize);
        self.pass(UNIT, &wanted, &mut |_, bytes| out.extend_from_slice(bytes))?;
        out.truncate(len as usize);
        Ok(out)
    }
}

impl BlockSource for MemberBlocks {
    fn pass(
        &mut self,
        block_size: u64,
        wanted: &BTreeSet<u64>,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), DiffError> {
        let Some(&last) = wanted.last() else {
            return Ok(());
        };
        let end = self.start + (last + 1) * block_size;
        let mut pkg = Package::open(&self.package)?;
        let mut members = pkg.members()?;
        let mut m = loop {
            match members.next_member()? {
                None => return Ok(()),
                Some(m) if m.name() == self.member => break m,
                Some(_) => {}
            }
        };
        let mut buf = vec![0u8; 256 << 10];
        let mut block = Vec::with_capacity(block_size as usize);
        let mut pos = 0u64;
        while pos < end {
            let (n, data) = match m.next_piece(&mut buf)? {
                Piece::End => break,
                Piece::Data(n) => (n as u64, Some(&buf[..n])),
                Piece::Zeros(n) => (n, None),
            };
            let piece_end = pos + n;
            let mut off = pos.max(self.start);
            while off < piece_end.min(end) {
                let b = (off - self.start) / block_size;
                let b_start = self.start + b * block_size;
                if !wanted.contains(&b) {
                    // skip to the next wanted block, or past this piece
                    off = match wanted.range(b + 1..).next() {
                        Some(next) => (self.start + next * block_size).min(piece_end),
                        None => piece_end,
                    };
                    continue;
                }
                let take = (b_start + block_size).min(piece_end) - off;
                match data {
                    Some(d) => block
                        .extend_from_slice(&d[(off - pos) as usize..(off - pos + take) as usize]),
                    None => block.resize(block.len() + take as usize, 0),
                }
                off += take;
                if block.len() as u64 == block_size {
                    visit(b, &block);
                    block.clear();
                }
            }
            pos = piece_end;
        }
        Ok(())
    }
}
