//! The PE32+ header layout of a stub or a UKI, parsed with `object` and checked against the file.
//!
//! `object` parses the structures (DOS header, NT headers, section table) and bounds-checks each
//! read against the bytes it is given; what it does not check, because a general reader need not,
//! is checked here: that every section lies inside the file and inside SizeOfImage, that no two
//! sections overlap in the file or in memory, that the section table is in ascending address
//! order (systemd-stub 252 logs "Overlapping PE sections detected" and stalls otherwise), and the
//! alignments the writer computes with. A section's content is what the loader puts in memory and
//! systemd-stub uses: VirtualSize bytes, taken from the raw data and zero-filled past it. Everything is parsed from at most [`HEADER_READ_MAX`]
//! bytes read from the start of the file, so a hostile header can never make us allocate more.

use object::pe::{self, ImageDosHeader, ImageNtHeaders64, ImageSectionHeader};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, SectionTable};
use object::LittleEndian as LE;

/// How much of the start of a file the headers may occupy (SizeOfHeaders, the section table):
/// real PE images keep them in the first 4 KiB; 64 KiB leaves room without letting a hostile
/// header decide how much we read.
pub const HEADER_READ_MAX: u64 = 64 * 1024;

/// The Windows loader's limit, which the PE specification documents; far above what a UKI needs.
pub const MAX_SECTIONS: usize = 96;

/// The largest uninitialized tail (VirtualSize beyond SizeOfRawData) a section may have: a
/// stub's .bss is kilobytes, and the reader hashes the tail's zeros, so a hostile header must not
/// make it hash gigabytes.
pub const MAX_ZERO_TAIL: u64 = 16 * 1024 * 1024;

/// One section header, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSection {
    /// The 8-byte name field as stored (NUL-padded).
    pub name: [u8; 8],
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub size_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
    pub characteristics: u32,
}

impl RawSection {
    /// The name without its NUL padding, escaped for messages and reports (our names are ASCII).
    pub fn display_name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(8);
        self.name[..end].escape_ascii().to_string()
    }

    /// How many of the section's VirtualSize bytes come from the file; the rest (an
    /// uninitialized tail, like .bss) is zeros in memory.
    pub fn bytes_in_file(&self) -> u32 {
        self.virtual_size.min(self.size_of_raw_data)
    }

    /// Whether systemd-stub 252 and systemd-boot 252 take this section for `wanted`: they compare
    /// only the first `wanted.len()` bytes of the name field (`memcmp(Name, ".linux", 6)`), so
    /// `.linuxfoo` counts as `.linux`.
    pub fn matches_as_systemd_does(&self, wanted: &str) -> bool {
        let w = wanted.as_bytes();
        w.len() <= 8 && self.name.starts_with(w)
    }
}

/// The parts of the headers the writer and the reader need.
#[derive(Clone, Debug)]
pub struct PeLayout {
    /// File offset of the NT headers (`e_lfanew`).
    pub nt_offset: usize,
    /// File offset of the first section header.
    pub section_table_offset: usize,
    pub size_of_headers: u32,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_image: u32,
    /// The certificate table (Authenticode signature): file offset and size, (0, 0) if none.
    pub security_directory: (u32, u32),
    pub sections: Vec<RawSection>,
}

impl PeLayout {
    /// Where the section table ends.
    pub fn section_table_end(&self) -> usize {
        self.section_table_offset + self.sections.len() * size_of::<ImageSectionHeader>()
    }
}

/// Parses and checks the headers. `head` is the start of the file (at most [`HEADER_READ_MAX`]
/// bytes), `file_len` its full length. The error is a reason, without the path: callers add it.
pub fn parse_layout(head: &[u8], file_len: u64) -> Result<PeLayout, String> {
    let dos = ImageDosHeader::parse(head).map_err(|_| {
        if head.len() < size_of::<ImageDosHeader>() {
            format!(
                "{} bytes is too short for a DOS header ({} bytes): not a PE image",
                head.len(),
                size_of::<ImageDosHeader>()
            )
        } else {
            "no 'MZ' signature at offset 0: not a PE image".to_string()
        }
    })?;
    let nt_offset = u64::from(dos.nt_headers_offset());
    if nt_offset >= file_len {
        return Err(format!(
            "the PE header offset (e_lfanew = {nt_offset:#x}) lies beyond the end of the file ({file_len} bytes)"
        ));
    }
    if nt_offset + (size_of::<ImageNtHeaders64>() as u64) > head.len() as u64 {
        return Err(format!(
            "the PE headers at {nt_offset:#x} do not fit in the first {} bytes of the file (truncated, or headers where no PE keeps them)",
            head.len()
        ));
    }
    let magic = object::read::pe::optional_header_magic(head)
        .map_err(|e| format!("no PE headers at {nt_offset:#x}: {e}"))?;
    match magic {
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => {}
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => {
            return Err(
                "a PE32 (32-bit) image: a UKI and its stub must be PE32+ (x86-64)".to_string(),
            )
        }
        other => return Err(format!("unknown optional header magic {other:#x}")),
    }
    let mut offset = nt_offset;
    let (nt, dirs) = ImageNtHeaders64::parse(head, &mut offset)
        .map_err(|e| format!("truncated or invalid PE headers: {e}"))?;
    let file_header = nt.file_header();
    let opt = nt.optional_header();

    let machine = file_header.machine.get(LE);
    if machine != pe::IMAGE_FILE_MACHINE_AMD64 {
        return Err(format!("machine {:#06x} is not x86-64 (0x8664)", machine.0));
    }
    let subsystem = opt.subsystem();
    if subsystem != pe::IMAGE_SUBSYSTEM_EFI_APPLICATION {
        return Err(format!(
            "subsystem {} is not an EFI application ({})",
            subsystem.0,
            pe::IMAGE_SUBSYSTEM_EFI_APPLICATION.0
        ));
    }

    let count = usize::from(file_header.number_of_sections.get(LE));
    if count == 0 || count > MAX_SECTIONS {
        return Err(format!(
            "{count} sections (a PE image has 1 to {MAX_SECTIONS})"
        ));
    }
    let section_table_offset = offset as usize;
    let table_end = section_table_offset + count * size_of::<ImageSectionHeader>();
    if table_end as u64 > file_len {
        return Err(format!(
            "the section table ({count} entries at {section_table_offset:#x}) extends beyond the end of the file ({file_len} bytes)"
        ));
    }
    let table = SectionTable::parse(file_header, head, offset).map_err(|_| {
        format!(
            "the section table ({count} entries at {section_table_offset:#x}) does not fit in the first {} bytes",
            head.len()
        )
    })?;

    let size_of_headers = opt.size_of_headers();
    let section_alignment = opt.section_alignment();
    let file_alignment = opt.file_alignment();
    let size_of_image = opt.size_of_image();
    if u64::from(size_of_headers) > file_len {
        return Err(format!(
            "SizeOfHeaders ({size_of_headers:#x}) is larger than the file ({file_len} bytes)"
        ));
    }
    if (size_of_headers as usize) < table_end {
        return Err(format!(
            "the section table ends at {table_end:#x}, beyond SizeOfHeaders ({size_of_headers:#x})"
        ));
    }
    if !file_alignment.is_power_of_two() || !(512..=65536).contains(&file_alignment) {
        return Err(format!(
            "FileAlignment {file_alignment:#x} is not a power of two from 512 to 64 KiB"
        ));
    }
    if !section_alignment.is_power_of_two() || section_alignment < file_alignment {
        return Err(format!(
            "SectionAlignment {section_alignment:#x} is not a power of two at least FileAlignment ({file_alignment:#x})"
        ));
    }
    if size_of_image < size_of_headers {
        return Err(format!(
            "SizeOfImage ({size_of_image:#x}) is smaller than SizeOfHeaders ({size_of_headers:#x})"
        ));
    }
    let security_directory = dirs
        .get(pe::IMAGE_DIRECTORY_ENTRY_SECURITY)
        .map(|d| (d.virtual_address.get(LE), d.size.get(LE)))
        .unwrap_or((0, 0));

    let sections: Vec<RawSection> = table
        .iter()
        .map(|s| RawSection {
            name: s.name,
            virtual_size: s.virtual_size.get(LE),
            virtual_address: s.virtual_address.get(LE),
            size_of_raw_data: s.size_of_raw_data.get(LE),
            pointer_to_raw_data: s.pointer_to_raw_data.get(LE),
            characteristics: s.characteristics.get(LE).0,
        })
        .collect();
    check_sections(&sections, size_of_headers, size_of_image, file_len)?;

    Ok(PeLayout {
        nt_offset: nt_offset as usize,
        section_table_offset,
        size_of_headers,
        section_alignment,
        file_alignment,
        size_of_image,
        security_directory,
        sections,
    })
}

/// Each section inside the file and the image, none overlapping another in the file or in memory.
fn check_sections(
    sections: &[RawSection],
    size_of_headers: u32,
    size_of_image: u32,
    file_len: u64,
) -> Result<(), String> {
    let mut previous_end: Option<(u64, String)> = None;
    for s in sections {
        let name = s.display_name();
        let (va, vs) = (u64::from(s.virtual_address), u64::from(s.virtual_size));
        let (ptr, raw) = (
            u64::from(s.pointer_to_raw_data),
            u64::from(s.size_of_raw_data),
        );
        if vs.saturating_sub(raw) > MAX_ZERO_TAIL {
            return Err(format!(
                "section {name}: VirtualSize ({vs:#x}) exceeds its raw data (SizeOfRawData {raw:#x}) by more than {MAX_ZERO_TAIL} bytes"
            ));
        }
        if raw > 0 {
            if ptr < u64::from(size_of_headers) {
                return Err(format!(
                    "section {name}: raw data at {ptr:#x} overlaps the headers (SizeOfHeaders {size_of_headers:#x})"
                ));
            }
            if ptr + raw > file_len {
                return Err(format!(
                    "section {name}: raw data {ptr:#x}..{:#x} extends beyond the end of the file ({file_len} bytes)",
                    ptr + raw
                ));
            }
        }
        if vs > 0 && va < u64::from(size_of_headers) {
            return Err(format!(
                "section {name}: VirtualAddress {va:#x} lies inside the headers (SizeOfHeaders {size_of_headers:#x})"
            ));
        }
        if va + vs > u64::from(size_of_image) {
            return Err(format!(
                "section {name}: {va:#x}..{:#x} extends beyond SizeOfImage ({size_of_image:#x})",
                va + vs
            ));
        }
        if let Some((end, prev)) = &previous_end {
            if va < *end {
                return Err(format!(
                    "sections {prev} and {name} overlap in memory (or are out of address order): {name} starts at {va:#x}, {prev} ends at {end:#x}"
                ));
            }
        }
        previous_end = Some((va + vs, name));
    }

    // Raw data ranges must be disjoint too (two headers naming the same bytes would let one
    // section's digest stand for another's content).
    let mut by_offset: Vec<&RawSection> =
        sections.iter().filter(|s| s.size_of_raw_data > 0).collect();
    by_offset.sort_by_key(|s| s.pointer_to_raw_data);
    for pair in by_offset.windows(2) {
        let end = u64::from(pair[0].pointer_to_raw_data) + u64::from(pair[0].size_of_raw_data);
        if u64::from(pair[1].pointer_to_raw_data) < end {
            return Err(format!(
                "sections {} and {} overlap in the file: {} starts at {:#x}, {} ends at {end:#x}",
                pair[0].display_name(),
                pair[1].display_name(),
                pair[1].display_name(),
                pair[1].pointer_to_raw_data,
                pair[0].display_name()
            ));
        }
    }
    Ok(())
}

/// `value` rounded up to the power of two `align`, or None when it would not fit in 32 bits.
pub fn align_up(value: u64, align: u32) -> Option<u64> {
    let mask = u64::from(align) - 1;
    let up = value.checked_add(mask)? & !mask;
    (up <= u64::from(u32::MAX)).then_some(up)
}
