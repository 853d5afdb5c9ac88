//! The reader against hostile UKIs (the node reads them from a FAT partition anyone may have
//! written): each corruption is refused with an error naming the file and the problem, never a
//! panic and never an allocation sized by the attacker.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use icos_testsupport::noise;
use icos_uki::{copy_section, read_section, read_sections, UkiError};

/// Writes `bytes` and returns the error both readers give for them.
fn refused(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    let e1 = read_sections(&p)
        .expect_err("read_sections accepted it")
        .to_string();
    let e2 = read_section(&p, ".osrel")
        .expect_err("read_section accepted it")
        .to_string();
    assert_eq!(e1, e2);
    assert!(e1.starts_with(&format!("{}: ", p.display())), "{e1}");
    e1
}

fn uki() -> Option<(tempfile::TempDir, Vec<u8>)> {
    let (dir, _, out, _) = built()?;
    let bytes = fs::read(&out).unwrap();
    Some((dir, bytes))
}

#[test]
fn truncated_and_foreign_files() {
    let Some((dir, good)) = uki() else { return };
    let d = dir.path();
    let e = refused(d, "empty.efi", b"");
    assert!(e.contains("0 bytes is too short for a DOS header"), "{e}");
    let e = refused(d, "tiny.efi", &good[..40]);
    assert!(e.contains("too short for a DOS header"), "{e}");
    let e = refused(
        d,
        "text.efi",
        b"this is not a PE file at all, just some text\n"
            .repeat(4)
            .as_slice(),
    );
    assert!(e.contains("no 'MZ' signature"), "{e}");
    let e = refused(d, "noise.efi", &noise(4096, 9));
    assert!(e.contains("not a PE image"), "{e}");

    // Headers cut off: inside the optional header, inside the section table.
    let nt = PeView::of(&good).nt;
    let e = refused(d, "cut-nt.efi", &good[..nt + 40]);
    assert!(e.contains("do not fit in the first"), "{e}");
    let v = PeView::of(&good);
    let e = refused(d, "cut-table.efi", &good[..v.section(3)]);
    assert!(e.contains("the section table (13 entries at"), "{e}");
    assert!(e.contains("extends beyond the end of the file"), "{e}");

    // e_lfanew pointing past the end.
    let mut b = good.clone();
    put_u32(&mut b, 0x3c, 0xffff_fff0);
    let e = refused(d, "lfanew.efi", &b);
    assert!(e.contains("lies beyond the end of the file"), "{e}");

    // A PE32 image.
    let mut b = good.clone();
    b[v.opt..v.opt + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    let e = refused(d, "pe32.efi", &b);
    assert!(e.contains("a PE32 (32-bit) image"), "{e}");
}

#[test]
fn section_tables_beyond_the_file_or_the_headers() {
    let Some((dir, good)) = uki() else { return };
    let d = dir.path();
    let v = PeView::of(&good);
    // 96 sections claimed: the table runs past SizeOfHeaders (0x400).
    let mut b = good.clone();
    b[v.nt + 6..v.nt + 8].copy_from_slice(&96u16.to_le_bytes());
    let e = refused(d, "many.efi", &b);
    assert!(e.contains("beyond SizeOfHeaders"), "{e}");
    // 65535 sections: refused before the table is read.
    b[v.nt + 6..v.nt + 8].copy_from_slice(&u16::MAX.to_le_bytes());
    let e = refused(d, "max.efi", &b);
    assert!(e.contains("65535 sections (a PE image has 1 to 96)"), "{e}");
    b[v.nt + 6..v.nt + 8].copy_from_slice(&0u16.to_le_bytes());
    assert!(refused(d, "none.efi", &b).contains("0 sections"));
    // SizeOfHeaders larger than the file.
    let mut b = good.clone();
    put_u32(&mut b, v.opt + OPT_SIZE_OF_HEADERS, 0x7fff_0000);
    assert!(
        refused(d, "hdrs.efi", &b).contains("SizeOfHeaders (0x7fff0000) is larger than the file")
    );
}

#[test]
fn section_data_beyond_the_file_or_overlapping() {
    let Some((dir, good)) = uki() else { return };
    let d = dir.path();
    let v = PeView::of(&good);
    let linux = v.section(v.find(&good, ".linux"));
    let cmdline = v.section(v.find(&good, ".cmdline"));
    let osrel = v.section(v.find(&good, ".osrel"));

    // The file ends inside .linux.
    let e = refused(d, "short.efi", &good[..good.len() - 4096]);
    assert!(e.contains("section .linux: raw data"), "{e}");
    assert!(e.contains("extends beyond the end of the file"), "{e}");

    // A huge SizeOfRawData (and VirtualSize): no allocation, no overflow, an error.
    let mut b = good.clone();
    put_u32(&mut b, linux + SIZE_OF_RAW_DATA, 0xffff_fe00);
    put_u32(&mut b, linux + VIRTUAL_SIZE, 0xffff_fe00);
    let e = refused(d, "huge.efi", &b);
    assert!(e.contains("section .linux: raw data"), "{e}");
    // The same with the raw size kept small: the VirtualSize alone is refused.
    let mut b = good.clone();
    put_u32(&mut b, cmdline + VIRTUAL_SIZE, 0xffff_fff0);
    let e = refused(d, "vsize.efi", &b);
    assert!(e.contains("section .cmdline: VirtualSize (0xfffffff0) exceeds its raw data (SizeOfRawData 0x200) by more than 16777216 bytes"), "{e}");
    // A tail within that bound but beyond SizeOfImage.
    let mut b = good.clone();
    put_u32(&mut b, cmdline + VIRTUAL_SIZE, 0x00f0_0000);
    let e = refused(d, "vsize2.efi", &b);
    assert!(
        e.contains("section .cmdline: 0x19600..0xf19600 extends beyond SizeOfImage"),
        "{e}"
    );
    // A pointer that wraps around 4 GiB.
    let mut b = good.clone();
    put_u32(&mut b, cmdline + POINTER_TO_RAW_DATA, 0xffff_ff00);
    assert!(refused(d, "wrap.efi", &b).contains("extends beyond the end of the file"));

    // Two sections on the same bytes of the file.
    let mut b = good.clone();
    let p = u32_at(&b, osrel + POINTER_TO_RAW_DATA);
    put_u32(&mut b, cmdline + POINTER_TO_RAW_DATA, p);
    let e = refused(d, "overlap-file.efi", &b);
    assert!(
        e.contains("sections .osrel and .cmdline overlap in the file"),
        "{e}"
    );

    // Two sections on the same addresses.
    let mut b = good.clone();
    let va = u32_at(&b, osrel + VIRTUAL_ADDRESS);
    put_u32(&mut b, cmdline + VIRTUAL_ADDRESS, va);
    let e = refused(d, "overlap-memory.efi", &b);
    assert!(
        e.contains("sections .osrel and .cmdline overlap in memory"),
        "{e}"
    );

    // Raw data inside the headers.
    let mut b = good.clone();
    put_u32(&mut b, cmdline + POINTER_TO_RAW_DATA, 0x200);
    assert!(refused(d, "in-headers.efi", &b).contains("overlaps the headers"));

    // A section beyond SizeOfImage.
    let mut b = good.clone();
    put_u32(&mut b, linux + VIRTUAL_ADDRESS, 0x7000_0000);
    assert!(refused(d, "image.efi", &b).contains("extends beyond SizeOfImage"));
}

#[test]
fn an_uninitialized_tail_reads_as_the_zeros_the_loader_puts_there() {
    let Some((dir, good)) = uki() else { return };
    let v = PeView::of(&good);
    let osrel = v.section(v.find(&good, ".osrel"));
    let mut b = good.clone();
    put_u32(&mut b, osrel + SIZE_OF_RAW_DATA, 16);
    let p = dir.path().join("tail.efi");
    fs::write(&p, &b).unwrap();
    let mut expect = OSREL.as_bytes()[..16].to_vec();
    expect.resize(OSREL.len(), 0);
    assert_eq!(read_section(&p, ".osrel").unwrap(), expect);
    let listed = read_sections(&p).unwrap();
    let s = listed.iter().find(|s| s.name == ".osrel").unwrap();
    assert_eq!(s.size as usize, OSREL.len());
    assert_eq!(s.sha256, icos_common::Digest::of(&expect));
}

#[test]
fn section_lookups_are_bounded_and_unambiguous() {
    let Some((dir, good)) = uki() else { return };
    let d = dir.path();
    let p = d.join("good.efi");
    fs::write(&p, &good).unwrap();
    // read_section never reads a large section into memory...
    let e = read_section(&p, ".linux").unwrap_err();
    assert!(matches!(e, UkiError::TooLarge { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("section .linux is 700001 bytes, more than the 65536"),
        "{e}"
    );
    // ...copy_section streams it.
    let mut sink = Vec::new();
    let (digest, size) = copy_section(&p, ".linux", &mut sink).unwrap();
    assert_eq!(size, 700_001);
    assert_eq!(digest, icos_common::Digest::of(&fake_kernel(700_001, 1)));
    assert!(matches!(
        read_section(&p, ".splash").unwrap_err(),
        UkiError::NoSection { .. }
    ));
    assert!(matches!(
        read_section(&p, "").unwrap_err(),
        UkiError::Usage(_)
    ));
    assert!(matches!(
        read_section(&p, ".toolongname").unwrap_err(),
        UkiError::Usage(_)
    ));

    // A second section systemd would take for .cmdline (it compares the name's first 8 bytes as
    // a prefix): the UKI is ambiguous.
    let v = PeView::of(&good);
    let mut b = good.clone();
    let uname = v.section(v.find(&b, ".uname"));
    b[uname..uname + 8].copy_from_slice(b".cmdline");
    let q = d.join("twice.efi");
    fs::write(&q, &b).unwrap();
    let e = read_section(&q, ".cmdline").unwrap_err();
    assert!(e.to_string().contains("2 sections match .cmdline"), "{e}");
    // Listing still works: both are shown.
    assert_eq!(
        read_sections(&q)
            .unwrap()
            .iter()
            .filter(|s| s.name == ".cmdline")
            .count(),
        2
    );
}

/// Thousands of random corruptions of a small UKI's headers: every result is Ok or an error,
/// never a panic, and most reach the section checks.
#[test]
fn random_header_corruption_never_panics() {
    let Some(stub) = icos_testsupport::systemd_stub() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_in(dir.path(), &stub);
    fs::write(&spec.linux, fake_kernel(0x1001, 5)).unwrap();
    fs::write(&spec.initrd, noise(99, 6)).unwrap();
    spec.uname = None;
    let out = dir.path().join("small.efi");
    icos_uki::write_uki(&spec, &out).unwrap();
    let good = fs::read(&out).unwrap();
    let v = PeView::of(&good);
    let table_end = v.section(v.count);

    let p = dir.path().join("fuzz.efi");
    let flips = noise(4 * 2000, 77);
    let (mut ok, mut refused) = (0, 0);
    for (i, f) in flips.chunks(4).enumerate() {
        let mut b = good.clone();
        let at = usize::from(u16::from_le_bytes([f[0], f[1]])) % table_end;
        b[at] = f[2];
        if i % 3 == 0 {
            b[(at + usize::from(f[3])) % table_end] ^= f[3];
        }
        if i % 11 == 0 {
            b.truncate(usize::from(f[3]) * 397 % b.len());
        }
        fs::write(&p, &b).unwrap();
        match read_sections(&p) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
        let _ = read_section(&p, ".cmdline");
    }
    // Bytes that do not matter to the reader (names, the DOS stub, unused fields) change
    // nothing; the rest is refused.
    assert!(ok > 200 && refused > 200, "{ok} read, {refused} refused");
}
