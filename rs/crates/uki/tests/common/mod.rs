//! Fixtures shared by the UKI tests: the pinned stub (from icos-testsupport), a stand-in kernel
//! with just the headers systemd-stub 252 looks at, and byte-level views of a PE file for
//! corrupting it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub use icos_testsupport::fake_kernel;
use icos_testsupport::noise;
use icos_uki::{write_uki, UkiReport, UkiSpec};

pub const OSREL: &str = "NAME=\"IC OS\"\nID=icos\nVERSION_ID=1\nPRETTY_NAME=\"IC OS 1\"\n";
pub const CMDLINE: &str = "console=ttyS0 ro rootwait roothash=0123456789abcdef";

/// The inputs of one UKI, written into `dir`. Odd sizes on purpose: padding and the checksum's
/// odd last byte get exercised.
pub fn spec_in(dir: &Path, stub: &Path) -> UkiSpec {
    fs::write(dir.join("os-release"), OSREL).unwrap();
    fs::write(dir.join("vmlinuz"), fake_kernel(700_001, 1)).unwrap();
    fs::write(dir.join("initrd.img"), noise(300_003, 2)).unwrap();
    UkiSpec {
        stub: stub.to_path_buf(),
        osrel: dir.join("os-release"),
        cmdline: CMDLINE.to_string(),
        uname: Some("6.1.0-50-amd64".to_string()),
        initrd: dir.join("initrd.img"),
        linux: dir.join("vmlinuz"),
    }
}

/// A UKI built from the pinned stub, or None (test skipped) when the stub is not available.
pub fn built() -> Option<(tempfile::TempDir, UkiSpec, PathBuf, UkiReport)> {
    let stub = icos_testsupport::systemd_stub()?;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_in(dir.path(), &stub);
    let out = dir.path().join("icos.efi");
    let report = write_uki(&spec, &out).unwrap();
    Some((dir, spec, out, report))
}

/// Offsets of a PE file's header fields, read from the bytes (no parser of ours involved).
pub struct PeView {
    pub nt: usize,
    pub opt: usize,
    pub table: usize,
    pub count: usize,
}

impl PeView {
    pub fn of(b: &[u8]) -> PeView {
        let nt = u32_at(b, 0x3c) as usize;
        let opt = nt + 24;
        let opt_size = u16::from_le_bytes([b[nt + 20], b[nt + 21]]) as usize;
        let count = u16::from_le_bytes([b[nt + 6], b[nt + 7]]) as usize;
        PeView {
            nt,
            opt,
            table: opt + opt_size,
            count,
        }
    }

    /// The offset of section `i`'s header.
    pub fn section(&self, i: usize) -> usize {
        self.table + 40 * i
    }

    /// The index of the section named `name`.
    pub fn find(&self, b: &[u8], name: &str) -> usize {
        (0..self.count)
            .find(|&i| {
                let h = &b[self.section(i)..self.section(i) + 8];
                let end = h.iter().position(|&c| c == 0).unwrap_or(8);
                &h[..end] == name.as_bytes()
            })
            .unwrap_or_else(|| panic!("no section {name}"))
    }
}

// Section header fields.
pub const VIRTUAL_SIZE: usize = 8;
pub const VIRTUAL_ADDRESS: usize = 12;
pub const SIZE_OF_RAW_DATA: usize = 16;
pub const POINTER_TO_RAW_DATA: usize = 20;
// Optional header (PE32+) fields.
pub const OPT_CHECKSUM: usize = 64;
pub const OPT_SUBSYSTEM: usize = 68;
pub const OPT_SIZE_OF_HEADERS: usize = 60;

pub fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

pub fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// The PE checksum as the PE format specification describes it (Microsoft's CheckSumMappedFile):
/// the file as 16-bit little-endian words, the CheckSum field skipped, each carry folded back,
/// plus the file length. Written independently of the crate's streaming version.
pub fn spec_checksum(b: &[u8]) -> u32 {
    let field = PeView::of(b).opt + OPT_CHECKSUM;
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        if i == field || i == field + 2 {
            i += 2;
            continue;
        }
        let word = u32::from(b[i]) | (u32::from(*b.get(i + 1).unwrap_or(&0)) << 8);
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum + b.len() as u32
}
