//! Reading a UKI back: the node's upgrade tool reads `.osrel` from a FAT partition anyone may have
//! written, and icos-diff names the section where two builds differ. Every size and offset comes
//! from the file and is checked (by [`crate::pe::parse_layout`]) before it is used; nothing is
//! allocated from a header value larger than [`SMALL_SECTION_MAX`] or [`HEADER_READ_MAX`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use icos_common::{Digest, HashingWriter};

use crate::payload::SMALL_SECTION_MAX;
use crate::pe::{parse_layout, PeLayout, RawSection, HEADER_READ_MAX};
use crate::{SectionInfo, UkiError};

struct Opened {
    file: File,
    layout: PeLayout,
}

fn open(path: &Path) -> Result<Opened, UkiError> {
    let io = |source| UkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::new();
    (&mut file)
        .take(HEADER_READ_MAX)
        .read_to_end(&mut head)
        .map_err(io)?;
    let layout = parse_layout(&head, len).map_err(|reason| UkiError::BadImage {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(Opened { file, layout })
}

/// Every section of the UKI at `path`, in section-table order, each hashed from the file.
pub fn read_sections(path: &Path) -> Result<Vec<SectionInfo>, UkiError> {
    let mut opened = open(path)?;
    let mut out = Vec::with_capacity(opened.layout.sections.len());
    for s in &opened.layout.sections {
        let mut sink = HashingWriter::new(io::sink());
        copy_raw(path, &mut opened.file, s, &mut sink)?;
        let (_, sha256, _) = sink.finish();
        out.push(SectionInfo {
            name: s.display_name(),
            virtual_address: s.virtual_address,
            file_offset: s.pointer_to_raw_data,
            size: s.virtual_size,
            sha256,
        });
    }
    Ok(out)
}

/// The bytes of the small section `name` (`.osrel`, `.cmdline`, `.uname`: at most 64 KiB; use
/// [`copy_section`] for `.linux` and `.initrd`). The section is found as systemd-stub 252 finds it
/// (by name prefix) and must be the only one that matches.
pub fn read_section(path: &Path, name: &str) -> Result<Vec<u8>, UkiError> {
    let mut opened = open(path)?;
    let s = find(path, &opened.layout, name)?;
    if u64::from(s.virtual_size) > SMALL_SECTION_MAX {
        return Err(UkiError::TooLarge {
            path: path.to_path_buf(),
            what: format!("section {name}"),
            size: s.virtual_size.into(),
            max: SMALL_SECTION_MAX,
        });
    }
    let mut data = Vec::with_capacity(s.virtual_size as usize);
    copy_raw(path, &mut opened.file, &s, &mut data)?;
    Ok(data)
}

/// Streams the section `name` into `out` and returns its digest and size.
pub fn copy_section(
    path: &Path,
    name: &str,
    out: &mut impl Write,
) -> Result<(Digest, u64), UkiError> {
    let mut opened = open(path)?;
    let s = find(path, &opened.layout, name)?;
    let mut w = HashingWriter::new(out);
    copy_raw(path, &mut opened.file, &s, &mut w)?;
    let (_, digest, size) = w.finish();
    Ok((digest, size))
}

fn find(path: &Path, layout: &PeLayout, name: &str) -> Result<RawSection, UkiError> {
    if name.is_empty() || name.len() > 8 {
        return Err(UkiError::Usage(format!(
            "section name {name:?} must be 1 to 8 bytes"
        )));
    }
    let hits: Vec<&RawSection> = layout
        .sections
        .iter()
        .filter(|s| s.matches_as_systemd_does(name))
        .collect();
    match hits.as_slice() {
        [] => Err(UkiError::NoSection {
            path: path.to_path_buf(),
            name: name.to_string(),
        }),
        [one] => Ok((*one).clone()),
        many => Err(UkiError::Ambiguous {
            path: path.to_path_buf(),
            name: name.to_string(),
            count: many.len(),
        }),
    }
}

/// Copies the content of `s` to `out`: its raw data (checked to lie inside the file) up to
/// VirtualSize, then zeros up to VirtualSize as the loader fills them. A file that shrank since it
/// was parsed is an error, not a short section.
fn copy_raw(
    path: &Path,
    file: &mut File,
    s: &RawSection,
    out: &mut impl Write,
) -> Result<(), UkiError> {
    let io = |source| UkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(s.pointer_to_raw_data.into()))
        .map_err(io)?;
    let want = u64::from(s.bytes_in_file());
    let copied = io::copy(&mut (&mut *file).take(want), out).map_err(io)?;
    if copied != want {
        return Err(UkiError::BadImage {
            path: path.to_path_buf(),
            reason: format!(
                "section {} ends early: {copied} of {want} bytes (the file changed while it was read)",
                s.display_name()
            ),
        });
    }
    let zeros = u64::from(s.virtual_size - s.bytes_in_file());
    io::copy(&mut io::repeat(0).take(zeros), out).map_err(io)?;
    Ok(())
}
