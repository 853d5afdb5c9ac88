//! Reads pinned Debian packages (`.deb`) without dpkg or root.
//!
//! A `.deb` is an `ar` archive holding `debian-binary` ("2.0\n"), `control.tar.*` and
//! `data.tar.*` (xz, zstd, gzip or plain). [`data_tar`] streams the decompressed data tar;
//! [`write_layer`] copies selected members of it, optionally renamed, into a tar layer that
//! `icos-rootfs` applies like any other layer. Nothing is extracted onto the host.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use icos_common::tarread::TarReader;
use icos_common::{AtomicFile, Digest, HashingWriter};

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a Debian binary package: {reason}")]
    NotADeb { path: PathBuf, reason: String },
    #[error("{path}: sha256 is {actual}, but the pin says {expected}: the file is not the pinned package (re-fetch it, or update the pin deliberately)")]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: member {member:?}: {reason}")]
    BadMember {
        path: PathBuf,
        member: String,
        reason: String,
    },
    #[error("include pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: rename {from:?} matched nothing: the package has no such member (check the version's file list with dpkg-deb -c)")]
    UnusedRename { path: PathBuf, from: String },
    #[error("{path}: include pattern {pattern:?} matched nothing")]
    UnusedInclude { path: PathBuf, pattern: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DebError + '_ {
    move |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that the file at `path` has the pinned sha256 (streamed).
pub fn verify_digest(path: &Path, expected: &Digest) -> Result<(), DebError> {
    let (actual, _) = icos_common::sha256_file(path).map_err(io_err(path))?;
    if actual != *expected {
        return Err(DebError::DigestMismatch {
            path: path.to_path_buf(),
            expected: *expected,
            actual,
        });
    }
    Ok(())
}

/// Streams the decompressed `data.tar` of the package at `path`.
pub fn data_tar(path: &Path) -> Result<Box<dyn Read>, DebError> {
    let not_a_deb = |reason: String| DebError::NotADeb {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != b"!<arch>\n" {
        return Err(not_a_deb("not an ar archive".into()));
    }
    // The ar format is three fixed-width fields per member; parsing it here (rather than with the
    // `ar` crate, whose entries borrow the archive) lets us hand back an owned, streaming reader.
    let mut first = true;
    loop {
        let mut header = [0u8; 60];
        if file.read_exact(&mut header).is_err() {
            return Err(not_a_deb("no data.tar member".into()));
        }
        let name = String::from_utf8_lossy(&header[0..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| not_a_deb(format!("bad ar header for member {name:?}")))?;
        if first {
            let mut version = vec![0u8; size.min(16) as usize];
            file.read_exact(&mut version).map_err(io_err(path))?;
            if name != "debian-binary" || !version.starts_with(b"2.") {
                return Err(not_a_deb("first member is not debian-binary 2.x".into()));
            }
            io::copy(
                &mut (&mut file).take(size - version.len() as u64 + (size & 1)),
                &mut io::sink(),
            )
            .map_err(io_err(path))?;
            first = false;
            continue;
        }
        if let Some(compression) = name.strip_prefix("data.tar") {
            let raw = file.take(size);
            let bad = |reason: String| DebError::BadMember {
                path: path.to_path_buf(),
                member: name.clone(),
                reason,
            };
            return Ok(match compression {
                "" => Box::new(raw),
                ".xz" => Box::new(liblzma::read::XzDecoder::new(raw)),
                ".gz" => Box::new(flate2::read::GzDecoder::new(raw)),
                ".zst" => Box::new(
                    zstd::stream::read::Decoder::with_buffer(raw)
                        .map_err(|e| bad(e.to_string()))?,
                ),
                other => return Err(bad(format!("unsupported compression {other:?}"))),
            });
        }
        io::copy(&mut (&mut file).take(size + (size & 1)), &mut io::sink())
            .map_err(io_err(path))?;
    }
}

/// What to take from a package's data tar.
#[derive(Debug, Default, Clone)]
pub struct LayerOptions {
    /// Globs over absolute paths (`/boot/vmlinuz-*`, `/lib/modules/**/virtio*.ko`); empty = everything.
    pub include: Vec<String>,
    /// Exact renames, absolute paths: `/usr/lib/systemd/boot/efi/systemd-bootx64.efi` → `/EFI/BOOT/BOOTX64.EFI`.
    pub renames: Vec<(String, String)>,
    /// The pinned sha256 of the package; checked before anything is read.
    pub expect: Option<Digest>,
}

/// What [`write_layer`] wrote.
#[derive(Debug)]
pub struct LayerSummary {
    pub entries: usize,
    pub sha256: Digest,
    pub size: u64,
}

fn absolute(member: &str) -> String {
    let trimmed = member
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    format!("/{trimmed}")
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, DebError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| DebError::BadPattern {
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| DebError::BadPattern {
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

/// Copies the selected members of the package at `deb` into the tar layer `out` (atomically).
///
/// Members keep their metadata; `icos-rootfs` normalizes owners, order and times later. Every
/// include pattern and every rename must match at least once, so a package update that moves a
/// file fails loudly instead of silently dropping it.
pub fn write_layer(deb: &Path, opts: &LayerOptions, out: &Path) -> Result<LayerSummary, DebError> {
    if let Some(expected) = &opts.expect {
        verify_digest(deb, expected)?;
    }
    let patterns = glob_set(&opts.include)?;
    let mut include_used = vec![false; opts.include.len()];
    let mut rename_used = vec![false; opts.renames.len()];

    let mut file = AtomicFile::create(out).map_err(io_err(out))?;
    let mut entries = 0;
    let (sha256, size) = {
        let mut builder = tar::Builder::new(HashingWriter::new(file.file()));
        builder.mode(tar::HeaderMode::Complete);
        // icos-common's reader, not `tar::Archive`: the tar crate splits PAX records at newlines
        // when it picks a member's name, so a value holding a newline could hide or forge one.
        let mut archive = TarReader::new(data_tar(deb)?);
        while let Some(entry) = archive.next_entry().map_err(|e| io_err(deb)(e.into()))? {
            let raw_name = String::from_utf8_lossy(&entry.path).into_owned();
            let name = absolute(&raw_name);
            if name.split('/').any(|c| c == "..") {
                return Err(DebError::BadMember {
                    path: deb.to_path_buf(),
                    member: raw_name,
                    reason: "path contains '..'".into(),
                });
            }
            if !opts.include.is_empty() {
                let matches = patterns.matches(&name);
                if matches.is_empty() {
                    continue;
                }
                for i in matches {
                    include_used[i] = true;
                }
            }
            let mut target = name.clone();
            for (i, (from, to)) in opts.renames.iter().enumerate() {
                if *from == name {
                    target = to.clone();
                    rename_used[i] = true;
                }
            }
            let mut header = tar::Header::from_byte_slice(&entry.header).clone();
            // Owners from PAX records replace the header's, as the tar crate did.
            for (key, value, set) in [
                (
                    &b"uid"[..],
                    entry.uid(),
                    tar::Header::set_uid as fn(&mut tar::Header, u64),
                ),
                (b"gid", entry.gid(), tar::Header::set_gid),
            ] {
                if entry.pax_value(key).is_some() {
                    let id = value.map_err(|reason| DebError::BadMember {
                        path: deb.to_path_buf(),
                        member: raw_name.clone(),
                        reason,
                    })?;
                    set(&mut header, u64::from(id));
                }
            }
            if header.entry_type().is_hard_link() {
                let link = entry
                    .link
                    .as_deref()
                    .map(|l| absolute(&String::from_utf8_lossy(l)))
                    .unwrap_or_default();
                builder
                    .append_link(&mut header, &target[1..], &link[1..])
                    .map_err(io_err(out))?;
            } else if header.entry_type().is_symlink() {
                let link = entry
                    .link
                    .as_deref()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .unwrap_or_default();
                builder
                    .append_link(&mut header, &target[1..], &link)
                    .map_err(io_err(out))?;
            } else if name == "/" {
                continue; // the root directory belongs to the image, not to a package
            } else {
                builder
                    .append_data(&mut header, &target[1..], &mut archive.data())
                    .map_err(io_err(out))?;
            }
            entries += 1;
        }
        let (_, sha256, size) = builder.into_inner().map_err(io_err(out))?.finish();
        (sha256, size)
    };
    for (i, used) in include_used.iter().enumerate() {
        if !used {
            return Err(DebError::UnusedInclude {
                path: deb.to_path_buf(),
                pattern: opts.include[i].clone(),
            });
        }
    }
    for (i, used) in rename_used.iter().enumerate() {
        if !used {
            return Err(DebError::UnusedRename {
                path: deb.to_path_buf(),
                from: opts.renames[i].0.clone(),
            });
        }
    }
    file.commit().map_err(io_err(out))?;
    Ok(LayerSummary {
        entries,
        sha256,
        size,
    })
}

/// Copies the content of one regular-file member (an absolute path, e.g.
/// `/usr/lib/systemd/boot/efi/linuxx64.efi.stub`) of the package at `deb` to the file `out`
/// (atomically): for steps that take a file, not a layer. The member must exist exactly once and
/// be a regular file; a symlink or hardlink is refused (name the file it points to instead).
pub fn extract_file(
    deb: &Path,
    expect: Option<&Digest>,
    member: &str,
    out: &Path,
) -> Result<LayerSummary, DebError> {
    if let Some(expected) = expect {
        verify_digest(deb, expected)?;
    }
    let mut file = AtomicFile::create(out).map_err(io_err(out))?;
    let mut found = None;
    let mut archive = TarReader::new(data_tar(deb)?);
    while let Some(entry) = archive.next_entry().map_err(|e| io_err(deb)(e.into()))? {
        let raw_name = String::from_utf8_lossy(&entry.path).into_owned();
        if absolute(&raw_name) != member {
            continue;
        }
        let bad = |reason: &str| DebError::BadMember {
            path: deb.to_path_buf(),
            member: raw_name.clone(),
            reason: reason.to_string(),
        };
        if found.is_some() {
            return Err(bad("the package holds it twice"));
        }
        if !tar::Header::from_byte_slice(&entry.header)
            .entry_type()
            .is_file()
        {
            return Err(bad("not a regular file: extract the file it names"));
        }
        let mut writer = HashingWriter::new(file.file());
        io::copy(&mut archive.data(), &mut writer).map_err(io_err(out))?;
        let (_, sha256, size) = writer.finish();
        found = Some(LayerSummary {
            entries: 1,
            sha256,
            size,
        });
    }
    let summary = found.ok_or_else(|| DebError::UnusedInclude {
        path: deb.to_path_buf(),
        pattern: member.to_string(),
    })?;
    file.commit().map_err(io_err(out))?;
    Ok(summary)
}
