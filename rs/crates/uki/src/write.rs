//! Appending the UKI's sections to the stub.
//!
//! No crate appends sections to an existing PE image deterministically (`object::write` builds
//! COFF objects and ELF from scratch; `pefile`/ukify are Python), so the append is written here on
//! top of `object`'s structures: the stub is parsed and checked by [`crate::pe::parse_layout`],
//! its header fields are changed through `object::pe::ImageNtHeaders64`, and the new section
//! headers are `object::pe::ImageSectionHeader` values. Everything else of the stub is copied byte
//! for byte, including what follows its last section (Debian's stub keeps a COFF symbol table
//! there).
//!
//! Two passes over the large inputs (`.linux`, `.initrd`): the first hashes them and sums their
//! PE checksum words, so the headers, checksum included, are final before the first byte is
//! written; the second copies them, hashing again, and a file that changed in between is an
//! error. The output is written once, front to back, through a temporary file renamed on success.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use icos_common::{AtomicFile, Digest, HashingWriter};
use object::pe::{self, ImageNtHeaders64, ImageSectionHeader};
use object::LittleEndian as LE;
use object::{U16, U32};
use sha2::{Digest as _, Sha256};

use crate::checksum::PeChecksum;
use crate::payload::{self, KERNEL_HEAD, SMALL_SECTION_MAX};
use crate::pe::{align_up, parse_layout, PeLayout, RawSection, HEADER_READ_MAX};
use crate::{check_outputs_distinct, FileDigest, SectionInfo, UkiError, UkiReport, REPORT_SCHEMA};

/// The largest stub we read (Debian's 252 stub is 83 KB).
pub const STUB_MAX: u64 = 16 * 1024 * 1024;

/// The order of the sections we append, after the stub's own. systemd-stub 252 finds sections by
/// name, so any order boots; `.linux` goes last as ukify does since systemd 253, so the kernel's
/// decompressor, when it runs in place (the EFI handover path), has free memory after it instead
/// of the initrd.
pub const SECTION_ORDER: [&str; 5] = [".osrel", ".cmdline", ".uname", ".initrd", ".linux"];

/// What the UKI is made of.
#[derive(Clone, Debug)]
pub struct UkiSpec {
    /// systemd's `linuxx64.efi.stub` (systemd-boot-efi).
    pub stub: PathBuf,
    /// The os-release file that becomes `.osrel`.
    pub osrel: PathBuf,
    /// The kernel command line that becomes `.cmdline` (printable ASCII, written without NUL).
    pub cmdline: String,
    /// The kernel release that becomes `.uname`, if any.
    pub uname: Option<String>,
    /// The initramfs that becomes `.initrd`.
    pub initrd: PathBuf,
    /// The kernel (bzImage with EFI stub) that becomes `.linux`.
    pub linux: PathBuf,
}

impl UkiSpec {
    /// The input files, for checks that an output is none of them.
    pub fn input_paths(&self) -> [&Path; 4] {
        [&self.stub, &self.osrel, &self.initrd, &self.linux]
    }
}

enum Content {
    Memory(Vec<u8>),
    File { path: PathBuf, file: File },
}

struct Payload {
    name: &'static str,
    content: Content,
    size: u32,
    sha256: Digest,
    checksum: PeChecksum,
}

/// Writes the UKI described by `spec` to `out` (atomically) and returns its report.
pub fn write_uki(spec: &UkiSpec, out: &Path) -> Result<UkiReport, UkiError> {
    check_outputs_distinct(&spec.input_paths(), &[out])?;
    let stub = read_capped(&spec.stub, STUB_MAX, "the stub")?;
    let head = &stub[..stub.len().min(HEADER_READ_MAX as usize)];
    let layout = parse_layout(head, stub.len() as u64).map_err(|reason| UkiError::BadStub {
        path: spec.stub.clone(),
        reason,
    })?;
    let mut payloads = load_payloads(spec)?;
    check_stub_takes(&spec.stub, &stub, &layout, &payloads)?;

    let plan = plan_sections(&spec.stub, &stub, &layout, &payloads)?;
    let (header, pe_checksum) = build_header(&stub, &layout, &plan, &payloads);

    let io_out = |source| UkiError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut file = AtomicFile::create(out).map_err(io_out)?;
    let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 16, file.file()));
    w.write_all(&header).map_err(io_out)?;
    w.write_all(&stub[header.len()..]).map_err(io_out)?;
    let mut sections = stub_sections(&stub, &layout);
    for (p, placed) in payloads.iter_mut().zip(&plan.placed) {
        zero_fill(&mut w, u64::from(placed.pointer_to_raw_data)).map_err(io_out)?;
        match &mut p.content {
            Content::Memory(bytes) => w.write_all(bytes).map_err(io_out)?,
            Content::File { path, file } => {
                copy_unchanged(path, file, (p.name, p.size, &p.sha256), &mut w, out)?
            }
        }
        sections.push(SectionInfo {
            name: p.name.to_string(),
            virtual_address: placed.virtual_address,
            file_offset: placed.pointer_to_raw_data,
            size: p.size,
            sha256: p.sha256,
        });
    }
    zero_fill(&mut w, plan.file_len).map_err(io_out)?;
    let (buffered, sha256, size) = w.finish();
    buffered.into_inner().map_err(|e| io_out(e.into_error()))?;
    file.commit().map_err(io_out)?;

    Ok(UkiReport {
        schema: REPORT_SCHEMA.to_string(),
        size,
        sha256,
        pe_checksum,
        stub: FileDigest {
            sha256: Digest::of(&stub),
            size: stub.len() as u64,
        },
        cmdline: spec.cmdline.clone(),
        uname: spec.uname.clone(),
        sections,
    })
}

/// Reads and checks every section's content; the large ones are only opened, hashed and summed.
fn load_payloads(spec: &UkiSpec) -> Result<Vec<Payload>, UkiError> {
    let bad = |section: &'static str, path: Option<&Path>, reason: String| UkiError::BadInput {
        section,
        path: path.map(Path::to_path_buf),
        reason,
    };

    let osrel = read_capped(&spec.osrel, SMALL_SECTION_MAX, "the os-release file")?;
    payload::check_osrel(&osrel).map_err(|r| bad(".osrel", Some(&spec.osrel), r))?;

    let (linux_file, linux_len) = open_sized(&spec.linux)?;
    let mut kernel_head = Vec::with_capacity(KERNEL_HEAD);
    (&linux_file)
        .take(KERNEL_HEAD as u64)
        .read_to_end(&mut kernel_head)
        .map_err(|source| UkiError::Io {
            path: spec.linux.clone(),
            source,
        })?;
    let kernel =
        payload::check_kernel(&kernel_head).map_err(|r| bad(".linux", Some(&spec.linux), r))?;
    payload::check_cmdline(&spec.cmdline, Some(kernel.cmdline_max))
        .map_err(|r| bad(".cmdline", None, r))?;
    if let Some(uname) = &spec.uname {
        payload::check_uname(uname).map_err(|r| bad(".uname", None, r))?;
    }
    let (initrd_file, initrd_len) = open_sized(&spec.initrd)?;

    let mut payloads = vec![
        memory_payload(".osrel", osrel),
        memory_payload(".cmdline", spec.cmdline.as_bytes().to_vec()),
    ];
    if let Some(u) = &spec.uname {
        payloads.push(memory_payload(".uname", u.as_bytes().to_vec()));
    }
    payloads.push(file_payload(
        ".initrd",
        &spec.initrd,
        initrd_file,
        initrd_len,
    )?);
    payloads.push(file_payload(".linux", &spec.linux, linux_file, linux_len)?);
    debug_assert!(payloads.iter().map(|p| p.name).eq(SECTION_ORDER
        .into_iter()
        .filter(|n| *n != ".uname" || spec.uname.is_some())));
    if let Some(p) = payloads.iter().find(|p| p.size == 0) {
        // systemd-stub takes a section of size 0 for a missing one.
        return Err(bad(
            p.name,
            None,
            "is empty; systemd-stub 252 treats an empty section as absent".into(),
        ));
    }
    Ok(payloads)
}

fn memory_payload(name: &'static str, bytes: Vec<u8>) -> Payload {
    let mut checksum = PeChecksum::new();
    checksum.update(&bytes);
    Payload {
        name,
        size: bytes.len() as u32, // capped at SMALL_SECTION_MAX
        sha256: Digest::of(&bytes),
        checksum,
        content: Content::Memory(bytes),
    }
}

/// The first pass over a large input: its digest and checksum words, and its length checked
/// against what the file system said when it was opened.
fn file_payload(
    name: &'static str,
    path: &Path,
    mut file: File,
    len: u64,
) -> Result<Payload, UkiError> {
    let io = |source| UkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = u32::try_from(len).map_err(|_| UkiError::BadInput {
        section: name,
        path: Some(path.to_path_buf()),
        reason: format!("is {len} bytes; a PE image holds at most 4 GiB"),
    })?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut checksum = PeChecksum::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        checksum.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(changed(path, name));
    }
    Ok(Payload {
        name,
        content: Content::File {
            path: path.to_path_buf(),
            file,
        },
        size,
        sha256: Digest::from_bytes(hasher.finalize().into()),
        checksum,
    })
}

fn changed(path: &Path, section: &'static str) -> UkiError {
    UkiError::BadInput {
        section,
        path: Some(path.to_path_buf()),
        reason: "changed while it was read; run again once nothing writes to it".into(),
    }
}

/// The second pass: copies exactly the bytes the first pass hashed, or fails.
fn copy_unchanged(
    path: &Path,
    file: &mut File,
    (name, size, sha256): (&'static str, u32, &Digest),
    w: &mut impl Write,
    out: &Path,
) -> Result<(), UkiError> {
    let io_in = |source| UkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_in)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = u64::from(size);
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want]).map_err(io_in)?;
        if n == 0 {
            return Err(changed(path, name));
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|source| UkiError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        left -= n as u64;
    }
    if Digest::from_bytes(hasher.finalize().into()) != *sha256 {
        return Err(changed(path, name));
    }
    Ok(())
}

/// Writes zeros until `w` has written `upto` bytes in all.
fn zero_fill<W: Write>(w: &mut HashingWriter<W>, upto: u64) -> io::Result<()> {
    let n = upto.saturating_sub(w.count());
    io::copy(&mut io::repeat(0).take(n), w)?;
    Ok(())
}

fn open_sized(path: &Path) -> Result<(File, u64), UkiError> {
    let io = |source| UkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, meta.len()))
}

/// Reads a whole small file, refusing one larger than `max` before reading it.
pub(crate) fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, UkiError> {
    let (file, len) = open_sized(path)?;
    if len > max {
        return Err(UkiError::TooLarge {
            path: path.to_path_buf(),
            what: what.to_string(),
            size: len,
            max,
        });
    }
    let mut data = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|source| UkiError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if data.len() as u64 > max {
        return Err(UkiError::TooLarge {
            path: path.to_path_buf(),
            what: what.to_string(),
            size: data.len() as u64,
            max,
        });
    }
    Ok(data)
}

/// What must hold of the stub beyond being a well-formed x86-64 EFI PE32+ image.
fn check_stub_takes(
    path: &Path,
    stub: &[u8],
    layout: &PeLayout,
    payloads: &[Payload],
) -> Result<(), UkiError> {
    let bad = |reason: String| UkiError::BadStub {
        path: path.to_path_buf(),
        reason,
    };
    if layout.security_directory.1 != 0 {
        return Err(bad("it is signed (it has an Authenticode certificate table), and appending sections would break the signature: sign the finished UKI instead (sbsign), not the stub".into()));
    }
    for s in &layout.sections {
        if let Some(p) = payloads.iter().find(|p| s.matches_as_systemd_does(p.name)) {
            return Err(bad(format!(
                "it already has a section {} (systemd-stub matches {} by prefix): use the plain stub from systemd-boot-efi, not a UKI",
                s.display_name(),
                p.name
            )));
        }
    }
    let table_end = layout.section_table_end();
    let new_end = table_end + payloads.len() * size_of::<ImageSectionHeader>();
    if new_end > layout.size_of_headers as usize {
        return Err(bad(format!(
            "no room for {} more section headers: the section table ends at {table_end:#x} and the header area (SizeOfHeaders) at {:#x}, which holds {} more",
            payloads.len(),
            layout.size_of_headers,
            (layout.size_of_headers as usize - table_end) / size_of::<ImageSectionHeader>()
        )));
    }
    if let Some(i) = stub[table_end..new_end].iter().position(|&b| b != 0) {
        return Err(bad(format!(
            "the header area after the section table is not empty (byte {:#x} is not zero): adding section headers would overwrite it",
            table_end + i
        )));
    }
    Ok(())
}

struct Plan {
    placed: Vec<RawSection>,
    size_of_image: u32,
    size_of_initialized_data: u32,
    file_len: u64,
}

/// Where each new section goes: in memory after everything the stub occupies (its last section
/// and its own SizeOfImage, whichever ends later), each at the next SectionAlignment boundary; in
/// the file after the stub's last byte, each at the next FileAlignment boundary, padded with zeros
/// to a FileAlignment multiple (EDK2 reads the last byte of every section's raw data).
fn plan_sections(
    path: &Path,
    stub: &[u8],
    layout: &PeLayout,
    payloads: &[Payload],
) -> Result<Plan, UkiError> {
    let too_big = || UkiError::BadInput {
        section: ".linux",
        path: None,
        reason: format!(
            "the UKI would exceed the 4 GiB a PE image can address (stub {})",
            path.display()
        ),
    };
    let stub_end = layout
        .sections
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size))
        .max()
        .unwrap_or(0)
        .max(u64::from(layout.size_of_image));
    let mut va = align_up(stub_end, layout.section_alignment).ok_or_else(too_big)?;
    let mut ptr = align_up(stub.len() as u64, layout.file_alignment).ok_or_else(too_big)?;
    let mut placed = Vec::new();
    let mut initialized = u64::from(
        read_nt(stub, layout)
            .optional_header
            .size_of_initialized_data
            .get(LE),
    );
    for p in payloads {
        let raw = align_up(u64::from(p.size), layout.file_alignment).ok_or_else(too_big)?;
        let mut name = [0u8; 8];
        name[..p.name.len()].copy_from_slice(p.name.as_bytes());
        let fits = |v: u64| u32::try_from(v).map_err(|_| too_big());
        placed.push(RawSection {
            name,
            virtual_size: p.size,
            virtual_address: fits(va)?,
            size_of_raw_data: fits(raw)?,
            pointer_to_raw_data: fits(ptr)?,
            characteristics: pe::IMAGE_SCN_CNT_INITIALIZED_DATA.0 | pe::IMAGE_SCN_MEM_READ.0,
        });
        va = align_up(va + u64::from(p.size), layout.section_alignment).ok_or_else(too_big)?;
        ptr = align_up(ptr + raw, layout.file_alignment).ok_or_else(too_big)?;
        // As pefile/ukify count it: the new sections' VirtualSize.
        initialized += u64::from(p.size);
    }
    Ok(Plan {
        placed,
        size_of_image: u32::try_from(va).map_err(|_| too_big())?,
        size_of_initialized_data: u32::try_from(initialized).map_err(|_| too_big())?,
        file_len: ptr,
    })
}

fn read_nt(stub: &[u8], layout: &PeLayout) -> ImageNtHeaders64 {
    *object::pod::from_bytes::<ImageNtHeaders64>(&stub[layout.nt_offset..])
        .expect("parse_layout checked the NT headers")
        .0
}

/// The stub's header area with the new section headers and fields, and the CheckSum it carries,
/// computed over the whole output (this header, the stub's bytes after it, every payload at its
/// offset; zero padding adds nothing).
fn build_header(
    stub: &[u8],
    layout: &PeLayout,
    plan: &Plan,
    payloads: &[Payload],
) -> (Vec<u8>, u32) {
    let mut header = stub[..layout.size_of_headers as usize].to_vec();
    {
        let (nt, _) =
            object::pod::from_bytes_mut::<ImageNtHeaders64>(&mut header[layout.nt_offset..])
                .expect("parse_layout checked the NT headers");
        let count = layout.sections.len() + plan.placed.len();
        nt.file_header.number_of_sections.set(LE, count as u16);
        nt.optional_header.size_of_image.set(LE, plan.size_of_image);
        nt.optional_header
            .size_of_initialized_data
            .set(LE, plan.size_of_initialized_data);
        nt.optional_header.check_sum.set(LE, 0);
        // TimeDateStamp stays the stub's: the stub is a pinned input, so its value is as fixed as
        // its code (Debian's 252 stub has 0).
    }
    let mut at = layout.section_table_end();
    for s in &plan.placed {
        let h = ImageSectionHeader {
            name: s.name,
            virtual_size: U32::new(LE, s.virtual_size),
            virtual_address: U32::new(LE, s.virtual_address),
            size_of_raw_data: U32::new(LE, s.size_of_raw_data),
            pointer_to_raw_data: U32::new(LE, s.pointer_to_raw_data),
            pointer_to_relocations: U32::new(LE, 0),
            pointer_to_linenumbers: U32::new(LE, 0),
            number_of_relocations: U16::new(LE, 0),
            number_of_linenumbers: U16::new(LE, 0),
            characteristics: U32::new(LE, pe::SectionFlags(s.characteristics)),
        };
        let bytes = object::pod::bytes_of(&h);
        header[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    }

    let mut sum = PeChecksum::new();
    let mut front = PeChecksum::new();
    front.update(&header);
    front.update(&stub[header.len()..]);
    sum.merge(&front);
    for p in payloads {
        sum.merge(&p.checksum);
    }
    let file_len = u32::try_from(plan.file_len).expect("plan_sections kept the file under 4 GiB");
    let checksum = sum.finish(file_len);
    let (nt, _) = object::pod::from_bytes_mut::<ImageNtHeaders64>(&mut header[layout.nt_offset..])
        .expect("parse_layout checked the NT headers");
    nt.optional_header.check_sum.set(LE, checksum);
    (header, checksum)
}

/// The stub's own sections as the report lists them (content as in [`crate::read_sections`]).
fn stub_sections(stub: &[u8], layout: &PeLayout) -> Vec<SectionInfo> {
    layout
        .sections
        .iter()
        .map(|s| {
            let mut hasher = Sha256::new();
            if s.bytes_in_file() > 0 {
                let start = s.pointer_to_raw_data as usize;
                hasher.update(&stub[start..start + s.bytes_in_file() as usize]);
            }
            let mut zeros = u64::from(s.virtual_size - s.bytes_in_file());
            while zeros > 0 {
                let n = zeros.min(4096);
                hasher.update(&[0u8; 4096][..n as usize]);
                zeros -= n;
            }
            SectionInfo {
                name: s.display_name(),
                virtual_address: s.virtual_address,
                file_offset: s.pointer_to_raw_data,
                size: s.virtual_size,
                sha256: Digest::from_bytes(hasher.finalize().into()),
            }
        })
        .collect()
}
