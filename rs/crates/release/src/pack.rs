//! A deterministic, sparse-aware tar compressed with multithreaded zstd.
//!
//! Each file becomes one entry named as given, mode 0644, uid/gid 0, empty user and group names,
//! mtime = SOURCE_DATE_EPOCH. A file with at least one all-zero 4 KiB block (aligned, decided by
//! content only) is stored in the GNU PAX sparse format 1.0, which GNU tar and libarchive restore
//! as a sparse file with identical content:
//!
//! - a PAX extended header (`x`, named `PaxHeaders/<name>`) with the records
//!   `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name=<name>`,
//!   `GNU.sparse.realsize=<size>` (and `size` when the stored size is ≥ 8 GiB), sorted by key;
//! - a regular-file header named `GNUSparseFile.0/<name>` whose size is the stored size;
//! - the data: the sparse map (decimal numbers, one per line: the number of regions, then each
//!   region's offset and length; a file that ends in a hole ends with a `<size> 0` region) padded
//!   with NULs to 512 bytes, followed by the data regions back to back.
//!
//! Files without a zero block are plain ustar entries. SEEK_DATA/SEEK_HOLE are used only to skip
//! the host's holes faster (a host hole is zeros, which the scan would find anyway), never to
//! decide the output.
//!
//! Compression: zstd level [`LEVEL`] with a content checksum, in multithreaded mode with
//! `workers` ≥ 1 — zstd's output in that mode does not depend on the number of workers (but
//! differs from single-threaded mode, which is therefore never used).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use icos_common::{AtomicFile, Digest, HashingWriter, SourceDateEpoch};
use icos_disk::sparse::{is_zero, write_zeros, BLOCK};

/// The zstd compression level: a fixed part of the output format. Level 3 (zstd's default) keeps
/// packaging near disk speed on 2 cores: on scripts/bench-disk.sh's 1.3 GiB disk, level 10 took
/// 60.7 s for 702.5 MB, level 3 takes 11.5 s for 718.9 MB (2.3 % larger).
pub const LEVEL: i32 = 3;

/// A file to put in the archive under `name`.
#[derive(Clone, Debug)]
pub struct PackInput {
    pub path: PathBuf,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct PackOptions {
    pub source_date_epoch: SourceDateEpoch,
    /// zstd workers (≥ 1); `None` = the available parallelism. Does not change the output.
    pub threads: Option<u32>,
}

/// The digest and size of the written `.tar.zst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackReport {
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("nothing to pack: name at least one file")]
    NoInputs,
    #[error("archive name {name:?} {problem}")]
    BadName { name: String, problem: String },
    #[error("archive name {name:?} is given to two files: names must be unique (use --name)")]
    DuplicateName { name: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} changed while it was packed: do not modify inputs during the build")]
    Changed { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

fn check_name(name: &str) -> Result<(), PackError> {
    let bad = |p: &str| PackError::BadName {
        name: name.to_string(),
        problem: p.to_string(),
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("contains control characters"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad(
            "must be a relative path of file names (no leading, trailing or doubled '/')",
        ));
    }
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("must not contain '.' or '..' components"));
    }
    // Both the sparse entry name and the PAX header name must fit ustar's 100-byte name field.
    if name.len() > 84 {
        return Err(bad(
            "is longer than 84 bytes (ustar's 100-byte name field holds GNUSparseFile.0/NAME)",
        ));
    }
    Ok(())
}

/// The data regions of a file: (offset, length), merged, in order.
fn data_map(file: &File, path: &Path, size: u64) -> Result<Vec<(u64, u64)>, PackError> {
    let rd = |source: io::Error| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut regions: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < size {
        // Jump over the host's hole, if it reports one; blocks skipped are zeros either way.
        let (start, extent_end) = match host_data(file, pos).map_err(rd)? {
            HostData::None => break,
            // widen to whole blocks, so blocks are judged whole whatever the host's granularity
            HostData::Extent(d, h) => (
                (d / BLOCK as u64 * BLOCK as u64).max(pos),
                h.div_ceil(BLOCK as u64) * BLOCK as u64,
            ),
            HostData::Unknown => (pos, size),
        };
        if start >= size {
            break;
        }
        let end = extent_end.min(size); // > start: a data extent is never empty
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], at)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => PackError::Changed {
                        path: path.to_path_buf(),
                    },
                    _ => rd(e),
                })?;
            for (i, block) in buf[..n].chunks(BLOCK).enumerate() {
                if is_zero(block) {
                    continue;
                }
                let off = at + (i * BLOCK) as u64;
                match regions.last_mut() {
                    Some((o, l)) if *o + *l == off => *l += block.len() as u64,
                    _ => regions.push((off, block.len() as u64)),
                }
            }
            at += n as u64;
        }
        pos = end;
    }
    Ok(regions)
}

enum HostData {
    /// No data at or after the offset.
    None,
    /// Data from .0 to .1 (the next hole).
    Extent(u64, u64),
    /// The filesystem does not say.
    Unknown,
}

fn host_data(file: &File, pos: u64) -> io::Result<HostData> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: lseek on a valid, open descriptor; no memory is passed.
    let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
    if data < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(HostData::None),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(HostData::Unknown),
            _ => Err(e),
        };
    }
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
    if hole < 0 {
        return Ok(HostData::Unknown);
    }
    Ok(HostData::Extent(data as u64, hole as u64))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

fn ustar_header(
    name: &str,
    size: u64,
    kind: tar::EntryType,
    epoch: SourceDateEpoch,
) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_entry_type(kind);
    // sizes ≥ 8 GiB do not fit the octal field; the PAX `size` record carries them
    h.set_size(if size < 0o77777777777 { size } else { 0 });
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch.seconds());
    h.set_cksum();
    Ok(h)
}

/// The tar stream: counts bytes so entries can be padded to 512.
struct TarOut<W: Write> {
    w: W,
    pos: u64,
}

impl<W: Write> TarOut<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.pos % 512) as usize;
        if rem != 0 {
            self.put(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }
}

/// Writes `inputs` into the `.tar.zst` at `out`; nothing appears under `out` unless all of it was written.
pub fn pack(inputs: &[PackInput], out: &Path, opts: &PackOptions) -> Result<PackReport, PackError> {
    if inputs.is_empty() {
        return Err(PackError::NoInputs);
    }
    let mut names = std::collections::BTreeSet::new();
    for i in inputs {
        check_name(&i.name)?;
        if !names.insert(i.name.as_str()) {
            return Err(PackError::DuplicateName {
                name: i.name.clone(),
            });
        }
    }
    let wr = |source: io::Error| PackError::Write {
        path: out.to_path_buf(),
        source,
    };
    let workers = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
        .max(1);

    let mut file = AtomicFile::create(out).map_err(wr)?;
    let (sha256, size) = write_archive(file.file(), inputs, out, opts.source_date_epoch, workers)?;
    file.commit().map_err(wr)?;
    Ok(PackReport { sha256, size })
}

/// The archive, streamed through zstd and SHA-256 into `file`.
fn write_archive(
    file: &File,
    inputs: &[PackInput],
    out: &Path,
    epoch: SourceDateEpoch,
    workers: u32,
) -> Result<(Digest, u64), PackError> {
    let wr = |source: io::Error| PackError::Write {
        path: out.to_path_buf(),
        source,
    };
    let hashed = HashingWriter::background(BufWriter::with_capacity(1 << 20, file));
    let mut enc = zstd::stream::write::Encoder::new(hashed, LEVEL).map_err(wr)?;
    enc.multithread(workers).map_err(wr)?;
    enc.include_checksum(true).map_err(wr)?;
    let mut tar = TarOut { w: enc, pos: 0 };

    let mut buf = vec![0u8; 1 << 20];
    for input in inputs {
        let rd = |source: io::Error| PackError::Read {
            path: input.path.clone(),
            source,
        };
        let f = File::open(&input.path).map_err(rd)?;
        let md = f.metadata().map_err(rd)?;
        if !md.is_file() {
            return Err(rd(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let size = md.len();
        let regions = data_map(&f, &input.path, size)?;
        let dense = size == 0 || regions == [(0, size)];
        if dense {
            let h = ustar_header(&input.name, size, tar::EntryType::Regular, epoch).map_err(wr)?;
            if size >= 0o77777777777 {
                write_pax(&mut tar, &input.name, &[("size", size.to_string())], epoch)
                    .map_err(wr)?;
            }
            tar.put(h.as_bytes()).map_err(wr)?;
        } else {
            let mut map = regions.clone();
            if !matches!(map.last(), Some((o, l)) if o + l >= size) {
                map.push((size, 0)); // the file ends in a hole
            }
            let mut text = format!("{}\n", map.len());
            for (o, l) in &map {
                text.push_str(&format!("{o}\n{l}\n"));
            }
            let map_len = (text.len() as u64).div_ceil(512) * 512;
            let stored = map_len + regions.iter().map(|(_, l)| l).sum::<u64>();
            let mut records = vec![
                ("GNU.sparse.major", "1".to_string()),
                ("GNU.sparse.minor", "0".to_string()),
                ("GNU.sparse.name", input.name.clone()),
                ("GNU.sparse.realsize", size.to_string()),
            ];
            if stored >= 0o77777777777 {
                records.push(("size", stored.to_string()));
            }
            write_pax(&mut tar, &input.name, &records, epoch).map_err(wr)?;
            let h = ustar_header(
                &format!("GNUSparseFile.0/{}", input.name),
                stored,
                tar::EntryType::Regular,
                epoch,
            )
            .map_err(wr)?;
            tar.put(h.as_bytes()).map_err(wr)?;
            tar.put(text.as_bytes()).map_err(wr)?;
            tar.pad().map_err(wr)?;
        }
        for (off, len) in if dense { vec![(0, size)] } else { regions } {
            let mut at = off;
            while at < off + len {
                let n = (off + len - at).min(buf.len() as u64) as usize;
                f.read_exact_at(&mut buf[..n], at)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => PackError::Changed {
                            path: input.path.clone(),
                        },
                        _ => rd(e),
                    })?;
                tar.put(&buf[..n]).map_err(wr)?;
                at += n as u64;
            }
        }
        tar.pad().map_err(wr)?;
        if f.metadata().map_err(rd)?.len() != size {
            return Err(PackError::Changed {
                path: input.path.clone(),
            });
        }
    }
    write_zeros(&mut tar.w, 1024).map_err(wr)?; // end of archive
    let hashed = tar.w.finish().map_err(wr)?;
    let (buffered, sha256, size) = hashed.finish();
    buffered.into_inner().map_err(|e| wr(e.into_error()))?;
    Ok((sha256, size))
}

fn write_pax<W: Write>(
    tar: &mut TarOut<W>,
    name: &str,
    records: &[(&str, String)],
    epoch: SourceDateEpoch,
) -> io::Result<()> {
    let mut sorted: Vec<&(&str, String)> = records.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let body: String = sorted.iter().map(|(k, v)| pax_record(k, v)).collect();
    let h = ustar_header(
        &format!("PaxHeaders/{name}"),
        body.len() as u64,
        tar::EntryType::XHeader,
        epoch,
    )?;
    tar.put(h.as_bytes())?;
    tar.put(body.as_bytes())?;
    tar.pad()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(
            pax_record("GNU.sparse.major", "1"),
            "22 GNU.sparse.major=1\n"
        );
        let r = pax_record("k", &"v".repeat(95));
        assert_eq!(r.len(), 102);
        assert!(r.starts_with("102 k="));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("disk.img").is_ok());
        assert!(check_name("images/root.ext4").is_ok());
        for bad in [
            "",
            "/abs",
            "a/../b",
            "./a",
            "a//b",
            "dir/",
            "a\nb",
            &"x".repeat(85),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
