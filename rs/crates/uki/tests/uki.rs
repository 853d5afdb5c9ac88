//! A UKI from the pinned systemd-stub, checked with stock readers (binutils objdump/objcopy,
//! Python's pefile), rebuilt for determinism, and refused when its inputs would not boot.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use icos_common::Digest;
use icos_testsupport::run_checker;
use icos_uki::{
    read_report, read_section, read_sections, write_report, write_uki, UkiError, REPORT_SCHEMA,
};

/// `objdump -h`: every section with its size, as binutils reads the PE.
fn objdump_sections(file: &Path) -> Vec<(String, u64, u64, u64)> {
    let (ok, text) = run_checker(Command::new("objdump").arg("-h").arg(file), "binutils");
    assert!(ok, "objdump -h failed: {text}");
    assert!(text.contains("file format pei-x86-64"), "{text}");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 7 && f[0].parse::<u32>().is_ok()).then(|| {
                let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
                (f[1].to_string(), hex(f[2]), hex(f[3]), hex(f[5]))
            })
        })
        .collect()
}

#[test]
fn objdump_lists_the_sections_we_wrote() {
    let Some((dir, spec, out, report)) = built() else {
        return;
    };
    let stub_sections = objdump_sections(&spec.stub);
    let sections = objdump_sections(&out);
    // The stub's sections come first, unchanged; ours follow in the documented order.
    assert_eq!(&sections[..stub_sections.len()], &stub_sections[..]);
    let ours: Vec<(String, u64)> = sections[stub_sections.len()..]
        .iter()
        .map(|(n, size, _, _)| (n.clone(), *size))
        .collect();
    let len = |p: &Path| fs::metadata(p).unwrap().len();
    assert_eq!(
        ours,
        vec![
            (".osrel".to_string(), OSREL.len() as u64),
            (".cmdline".to_string(), CMDLINE.len() as u64),
            (".uname".to_string(), "6.1.0-50-amd64".len() as u64),
            (".initrd".to_string(), len(&spec.initrd)),
            (".linux".to_string(), len(&spec.linux)),
        ]
    );
    // objdump's addresses and file offsets are the report's.
    for ((name, size, vma, offset), s) in sections.iter().zip(&report.sections) {
        assert_eq!(
            (name.as_str(), *size, *vma, *offset),
            (
                s.name.as_str(),
                u64::from(s.size),
                u64::from(s.virtual_address),
                u64::from(s.file_offset)
            )
        );
    }
    drop(dir);
}

#[test]
fn objcopy_dumps_exactly_our_bytes() {
    let Some((dir, spec, out, _)) = built() else {
        return;
    };
    let expect = [
        (".cmdline", CMDLINE.as_bytes().to_vec()),
        (".osrel", OSREL.as_bytes().to_vec()),
        (".uname", b"6.1.0-50-amd64".to_vec()),
        (".initrd", fs::read(&spec.initrd).unwrap()),
        (".linux", fs::read(&spec.linux).unwrap()),
    ];
    for (name, bytes) in expect {
        let dump = dir.path().join(format!("dump{name}"));
        let (ok, text) = run_checker(
            Command::new("objcopy")
                .arg(format!("--dump-section={name}={}", dump.display()))
                .arg(&out)
                .arg(dir.path().join("objcopy-out.efi")),
            "binutils",
        );
        assert!(ok, "objcopy --dump-section {name} failed: {text}");
        assert!(fs::read(&dump).unwrap() == bytes, "{name} differs");
    }
}

const PEFILE_SCRIPT: &str = r#"
import hashlib, json, sys
import pefile
out = {}
for path in sys.argv[1:]:
    pe = pefile.PE(path)
    out[path] = {
        "warnings": sorted(pe.get_warnings()),
        "checksum": pe.OPTIONAL_HEADER.CheckSum,
        "generated": pe.generate_checksum(),
        "size_of_image": pe.OPTIONAL_HEADER.SizeOfImage,
        "size_of_initialized_data": pe.OPTIONAL_HEADER.SizeOfInitializedData,
        "timestamp": pe.FILE_HEADER.TimeDateStamp,
        "sections": [
            [s.Name.rstrip(b"\0").decode(), s.VirtualAddress, s.Misc_VirtualSize, s.Characteristics,
             hashlib.sha256(s.get_data()[: s.Misc_VirtualSize]).hexdigest()]
            for s in pe.sections
        ],
    }
print(json.dumps(out))
"#;

/// Python's pefile, from Debian's python3-pefile (the system Python: /usr/bin/python3).
fn pefile(files: &[&Path]) -> serde_json::Value {
    let (ok, text) = run_checker(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(PEFILE_SCRIPT)
            .args(files),
        "python3-pefile",
    );
    assert!(
        ok,
        "pefile failed (install it with `apt-get install python3-pefile`): {text}"
    );
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn pefile_parses_it_without_new_warnings_and_agrees_on_every_section() {
    let Some((_dir, spec, out, report)) = built() else {
        return;
    };
    let v = pefile(&[&spec.stub, &out]);
    let (stub, uki) = (&v[spec.stub.to_str().unwrap()], &v[out.to_str().unwrap()]);
    // pefile already warns about Debian's stub (its relocation table lists 0x374a twice); the UKI
    // must add no warning of its own.
    assert_eq!(uki["warnings"], stub["warnings"], "{uki}");
    assert_eq!(uki["timestamp"], stub["timestamp"]);
    let sections = uki["sections"].as_array().unwrap();
    assert_eq!(sections.len(), report.sections.len());
    for (p, s) in sections.iter().zip(&report.sections) {
        assert_eq!(p[0], s.name.as_str());
        assert_eq!(p[1], s.virtual_address);
        assert_eq!(p[2], s.size);
        assert_eq!(
            format!("sha256:{}", p[4].as_str().unwrap()),
            s.sha256.to_string()
        );
    }
    for p in &sections[sections.len() - 5..] {
        assert_eq!(
            p[3], 0x4000_0040,
            "IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ"
        );
    }
    // SizeOfImage covers the last section, rounded to SectionAlignment (0x200 in this stub).
    let last = report.sections.last().unwrap();
    let end = u64::from(last.virtual_address) + u64::from(last.size);
    assert_eq!(
        uki["size_of_image"].as_u64().unwrap(),
        end.div_ceil(0x200) * 0x200
    );
    // SizeOfInitializedData grows by the new sections' sizes, as pefile/ukify count it.
    let added: u64 = report.sections[report.sections.len() - 5..]
        .iter()
        .map(|s| u64::from(s.size))
        .sum();
    assert_eq!(
        uki["size_of_initialized_data"].as_u64().unwrap(),
        stub["size_of_initialized_data"].as_u64().unwrap() + added
    );
}

#[test]
fn the_checksum_is_the_one_pefile_and_the_spec_compute() {
    let Some((_dir, spec, out, report)) = built() else {
        return;
    };
    let stub = fs::read(&spec.stub).unwrap();
    let uki = fs::read(&out).unwrap();
    // The reference implementation reproduces the checksum the stub's linker wrote...
    let stub_stored = u32_at(&stub, PeView::of(&stub).opt + OPT_CHECKSUM);
    assert_ne!(stub_stored, 0);
    assert_eq!(spec_checksum(&stub), stub_stored);
    // ...and the UKI's.
    let stored = u32_at(&uki, PeView::of(&uki).opt + OPT_CHECKSUM);
    assert_eq!(stored, report.pe_checksum);
    assert_eq!(spec_checksum(&uki), stored);
    let v = pefile(&[&out]);
    let p = &v[out.to_str().unwrap()];
    assert_eq!(p["checksum"], stored);
    assert_eq!(p["generated"], stored);
}

#[test]
fn the_report_matches_the_file_and_what_read_sections_sees() {
    let Some((dir, spec, out, report)) = built() else {
        return;
    };
    let bytes = fs::read(&out).unwrap();
    assert_eq!(report.schema, REPORT_SCHEMA);
    let json = dir.path().join("uki.json");
    write_report(&report, &json).unwrap();
    assert_eq!(read_report(&json).unwrap(), report);
    fs::write(
        &json,
        fs::read_to_string(&json)
            .unwrap()
            .replace(REPORT_SCHEMA, "icos.uki-report/v0"),
    )
    .unwrap();
    let e = read_report(&json).unwrap_err().to_string();
    assert!(e.contains("schema is \"icos.uki-report/v0\""), "{e}");
    assert_eq!(report.size, bytes.len() as u64);
    assert_eq!(report.sha256, Digest::of(&bytes));
    assert_eq!(
        report.stub.sha256,
        Digest::of(&fs::read(&spec.stub).unwrap())
    );
    assert_eq!(report.cmdline, CMDLINE);
    assert_eq!(read_sections(&out).unwrap(), report.sections);
    assert_eq!(read_section(&out, ".cmdline").unwrap(), CMDLINE.as_bytes());
    assert_eq!(read_section(&out, ".osrel").unwrap(), OSREL.as_bytes());
    let linux = report.sections.iter().find(|s| s.name == ".linux").unwrap();
    assert_eq!(linux.sha256, Digest::of(&fs::read(&spec.linux).unwrap()));
    // Alignment: every new section at a FileAlignment offset and a SectionAlignment address, in
    // ascending order, the stub's bytes untouched outside the header fields.
    let stub = fs::read(&spec.stub).unwrap();
    for s in &report.sections[report.sections.len() - 5..] {
        assert_eq!(s.file_offset % 0x200, 0);
        assert_eq!(s.virtual_address % 0x200, 0);
    }
    assert_eq!(
        bytes.len() % 0x200,
        0,
        "the last section is padded to FileAlignment"
    );
    assert_eq!(&bytes[0x400..stub.len()], &stub[0x400..]);
    let first_new = report.sections[report.sections.len() - 5].file_offset as usize;
    assert!(bytes[stub.len()..first_new].iter().all(|&b| b == 0));
}

#[test]
fn same_inputs_give_the_same_bytes_from_another_directory() {
    let Some(stub) = icos_testsupport::systemd_stub() else {
        return;
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let spec_a = spec_in(a.path(), &stub);
    let spec_b = spec_in(b.path(), &stub);
    write_uki(&spec_a, &a.path().join("x.efi")).unwrap();
    write_uki(&spec_b, &b.path().join("y.efi")).unwrap();
    let x = fs::read(a.path().join("x.efi")).unwrap();
    let y = fs::read(b.path().join("y.efi")).unwrap();
    assert!(x == y, "two builds of the same inputs differ");
    // And one changed input byte changes the output (the comparison can fail).
    let mut k = fs::read(&spec_b.linux).unwrap();
    k[5000] ^= 1;
    fs::write(&spec_b.linux, k).unwrap();
    write_uki(&spec_b, &b.path().join("y.efi")).unwrap();
    assert!(x != fs::read(b.path().join("y.efi")).unwrap());
}

/// Runs `write_uki` and returns its error message; no output may appear.
fn refused(spec: &icos_uki::UkiSpec, dir: &Path) -> String {
    let out = dir.join("refused.efi");
    let err = write_uki(spec, &out).expect_err("the UKI was written");
    assert!(!out.exists(), "a refused UKI left {}", out.display());
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    err.to_string()
}

#[test]
fn inputs_that_would_not_boot_as_written_are_refused() {
    let Some(stub) = icos_testsupport::systemd_stub() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = spec_in(dir.path(), &stub);

    let mut s = good.clone();
    s.cmdline = "console=ttyS0\nro".into();
    let e = refused(&s, dir.path());
    assert!(
        e.contains(".cmdline: the kernel command line has byte 0x0a at offset 13"),
        "{e}"
    );

    s.cmdline = "root=/dev/mapper/rööt".into();
    assert!(refused(&s, dir.path()).contains("only printable ASCII"));

    s.cmdline = format!("roothash={}", "a".repeat(2048));
    let e = refused(&s, dir.path());
    assert!(e.contains("takes at most 2047"), "{e}");

    s.cmdline = String::new();
    assert!(refused(&s, dir.path()).contains("is empty"));

    let mut s = good.clone();
    fs::write(dir.path().join("bad-osrel"), "VERSION_ID=1\n").unwrap();
    s.osrel = dir.path().join("bad-osrel");
    let e = refused(&s, dir.path());
    assert!(
        e.contains("bad-osrel: .osrel: the os-release file sets none of PRETTY_NAME"),
        "{e}"
    );

    // The initramfs given as the kernel.
    let mut s = good.clone();
    s.linux = good.initrd.clone();
    let e = refused(&s, dir.path());
    assert!(
        e.contains("initrd.img: .linux: not a Linux kernel image"),
        "{e}"
    );

    let mut s = good.clone();
    fs::write(dir.path().join("empty"), b"").unwrap();
    s.initrd = dir.path().join("empty");
    assert!(refused(&s, dir.path()).contains(".initrd: is empty"));

    let mut s = good.clone();
    s.uname = Some("6.1 amd64".into());
    assert!(refused(&s, dir.path()).contains("without spaces"));

    // The output must not be an input.
    let e = write_uki(&good, &good.linux).unwrap_err();
    assert!(matches!(e, UkiError::SameFile { .. }), "{e}");
    assert!(e.to_string().contains("is the same file as"), "{e}");
    assert_eq!(fs::read(&good.linux).unwrap(), fake_kernel(700_001, 1));
}

/// The stub with `edit` applied, written next to the other inputs.
fn edited_stub(
    dir: &Path,
    stub: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> icos_uki::UkiSpec {
    let mut b = fs::read(stub).unwrap();
    edit(&mut b);
    let p = dir.join(name);
    fs::write(&p, b).unwrap();
    let mut spec = spec_in(dir, stub);
    spec.stub = p;
    spec
}

#[test]
fn stubs_we_cannot_extend_are_refused() {
    let Some(stub) = icos_testsupport::systemd_stub() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let s = edited_stub(d, &stub, "pe32.stub", |b| {
        let o = PeView::of(b).opt;
        b[o..o + 2].copy_from_slice(&0x10bu16.to_le_bytes());
    });
    let e = refused(&s, d);
    assert!(
        e.contains("pe32.stub: not a usable systemd-stub: a PE32 (32-bit) image"),
        "{e}"
    );

    let s = edited_stub(d, &stub, "arm.stub", |b| {
        let nt = PeView::of(b).nt;
        b[nt + 4..nt + 6].copy_from_slice(&0xaa64u16.to_le_bytes());
    });
    assert!(refused(&s, d).contains("machine 0xaa64 is not x86-64"));

    let s = edited_stub(d, &stub, "driver.stub", |b| {
        let o = PeView::of(b).opt;
        b[o + OPT_SUBSYSTEM..o + OPT_SUBSYSTEM + 2].copy_from_slice(&11u16.to_le_bytes());
    });
    assert!(refused(&s, d).contains("subsystem 11 is not an EFI application"));

    let s = edited_stub(d, &stub, "text.stub", |b| {
        *b = b"#!/bin/sh\necho hi\n".repeat(10)
    });
    assert!(refused(&s, d).contains("text.stub: not a usable systemd-stub: no 'MZ' signature"));
    let s = edited_stub(d, &stub, "short.stub", |b| b.truncate(0x100));
    assert!(refused(&s, d).contains("do not fit in the first 256 bytes"));

    // A stub that is already a UKI (a section .linux): rename its .sdmagic.
    let s = edited_stub(d, &stub, "uki.stub", |b| {
        let v = PeView::of(b);
        let i = v.find(b, ".sdmagic");
        b[v.section(i)..v.section(i) + 8].copy_from_slice(b".linux\0\0");
    });
    let e = refused(&s, d);
    assert!(e.contains("it already has a section .linux"), "{e}");
    // systemd matches by prefix: ".osrelX" is taken for ".osrel".
    let s = edited_stub(d, &stub, "prefix.stub", |b| {
        let v = PeView::of(b);
        let i = v.find(b, ".sdmagic");
        b[v.section(i)..v.section(i) + 8].copy_from_slice(b".osrelX\0");
    });
    assert!(refused(&s, d).contains("already has a section .osrelX"));

    // No room for five more section headers: SizeOfHeaders shrunk to end just after the table
    // plus two entries.
    let s = edited_stub(d, &stub, "full.stub", |b| {
        let v = PeView::of(b);
        let end = (v.section(v.count) + 80) as u32;
        put_u32(b, v.opt + OPT_SIZE_OF_HEADERS, end);
    });
    let e = refused(&s, d);
    assert!(e.contains("no room for 5 more section headers"), "{e}");
    assert!(e.contains("holds 2 more"), "{e}");

    // Something lives after the section table.
    let s = edited_stub(d, &stub, "busy.stub", |b| {
        let v = PeView::of(b);
        b[v.section(v.count) + 41] = 0x7f;
    });
    assert!(refused(&s, d).contains("the header area after the section table is not empty"));

    // A signed stub: a certificate table in data directory 4.
    let s = edited_stub(d, &stub, "signed.stub", |b| {
        let o = PeView::of(b).opt;
        let dir4 = o + 112 + 4 * 8;
        let len = b.len() as u32;
        put_u32(b, dir4, len);
        put_u32(b, dir4 + 4, 8);
        b.extend_from_slice(&[0; 8]);
    });
    assert!(refused(&s, d).contains("it is signed"));
}
