//! The initramfs writer against GNU cpio, on a rootfs tar made here in the ARCHITECTURE.md format.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use icos_initramfs::write_initramfs;
use icos_testsupport::{pax_record, push_ustar};

fn rootfs_tar(path: &Path, with_xattr: bool) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(5).unwrap();
            h.set_device_minor(1).unwrap();
        }
        // Names as icos-rootfs writes them: the tar crate would drop the "./".
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name_literal(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("./", tar::EntryType::Directory, 0o755, b"", None);
    add("./bin/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "./bin/busybox",
        tar::EntryType::Regular,
        0o755,
        b"\x7fELF pretend busybox",
        None,
    );
    add(
        "./bin/sh",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("busybox"),
    );
    add(
        "./bin/sh2",
        tar::EntryType::Link,
        0o755,
        b"",
        Some("./bin/busybox"),
    );
    add("./dev/", tar::EntryType::Directory, 0o755, b"", None);
    add("./dev/console", tar::EntryType::Char, 0o600, b"", None);
    add(
        "./init",
        tar::EntryType::Regular,
        0o755,
        b"#!/bin/sh\necho odd length!\n",
        None,
    );
    if with_xattr {
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        b.append_pax_extensions([("SCHILY.xattr.security.capability", &b"\x01"[..])])
            .unwrap();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_ustar_mut().unwrap().name[..6].copy_from_slice(b"./ping");
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
    }
    b.finish().unwrap();
}

fn cpio_list(initrd: &Path) -> String {
    let mut gz = flate2::read::GzDecoder::new(fs::File::open(initrd).unwrap());
    let mut raw = Vec::new();
    gz.read_to_end(&mut raw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let raw_path = dir.path().join("raw.cpio");
    fs::write(&raw_path, &raw).unwrap();
    let out = Command::new("cpio")
        .args(["-itv", "--numeric-uid-gid", "-F"])
        .arg(&raw_path)
        .env("TZ", "UTC")
        .output()
        .expect("GNU cpio runs (apt-get install cpio)");
    assert!(
        out.status.success(),
        "cpio rejects the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gnu_cpio_reads_what_we_write_and_two_runs_agree() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    rootfs_tar(&tar, false);
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    let summary = write_initramfs(&tar, &a).unwrap();
    write_initramfs(&tar, &b).unwrap();
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "two runs differ"
    );
    assert_eq!(summary.sha256, icos_common::sha256_file(&a).unwrap().0);
    let gz = fs::read(&a).unwrap();
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip header carries a timestamp");

    let listing = cpio_list(&a);
    for expected in [
        "drwxr-xr-x   1 0        0               0 Nov 14  2023 .",
        "-rwxr-xr-x   2 0        0              20 Nov 14  2023 bin/busybox",
        "lrwxrwxrwx   1 0        0               7 Nov 14  2023 bin/sh -> busybox",
        "crw-------   1 0        0          5,   1 Nov 14  2023 dev/console",
        "-rwxr-xr-x   1 0        0              27 Nov 14  2023 init",
    ] {
        assert!(
            listing.contains(expected),
            "missing {expected:?} in:\n{listing}"
        );
    }
    assert!(listing.contains("bin/sh2"), "{listing}");
}

#[test]
fn refuses_xattrs_it_cannot_carry_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    rootfs_tar(&tar, true);
    let out = dir.path().join("initrd.img");
    let err = write_initramfs(&tar, &out).unwrap_err();
    assert!(
        err.to_string().contains("\"./ping\"") && err.to_string().contains("xattrs"),
        "{err}"
    );
    assert!(!out.exists());
}

/// A rootfs tar built block by block: `./`, then `./init` preceded by a PAX header of `records`.
fn tar_with_pax(path: &Path, records: &[u8]) {
    let mut t = Vec::new();
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        push_ustar(&mut t, name, kind, mode, 1_700_000_000, data)
    };
    add("./", tar::EntryType::Directory, 0o755, b"");
    add("./@PaxHeader", tar::EntryType::XHeader, 0o644, records);
    add("./init", tar::EntryType::Regular, 0o755, b"#!/bin/sh\n");
    t.extend_from_slice(&[0u8; 1024]);
    fs::write(path, t).unwrap();
}

#[test]
fn pax_values_with_newlines_are_read_by_their_length() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let out = dir.path().join("initrd.img");
    // An xattr whose value holds a newline is seen (and refused as any xattr), not dropped.
    tar_with_pax(&tar, &pax_record("SCHILY.xattr.user.nl", b"a\nb=c"));
    let err = write_initramfs(&tar, &out).unwrap_err().to_string();
    assert!(
        err.contains("\"./init\"") && err.contains("has xattrs"),
        "{err}"
    );
    assert!(!out.exists());

    // A long name holding a newline, after another record with one: the whole name is used.
    let name = format!("./{}\nline2={}", "n".repeat(100), "m".repeat(20));
    let records = [
        pax_record("comment", b"first\nsecond"),
        pax_record("path", name.as_bytes()),
    ]
    .concat();
    tar_with_pax(&tar, &records);
    write_initramfs(&tar, &out).unwrap();
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&out).unwrap())
        .read_to_end(&mut cpio)
        .unwrap();
    let entry = [&name.as_bytes()[2..], b"\0"].concat();
    assert!(
        cpio.windows(entry.len()).any(|w| w == entry),
        "the cpio lacks the full name"
    );
    cpio_list(&out); // GNU cpio reads it
}

/// uid 2^32 truncated to 32 bits would be root: a setuid file from a hostile layer would become
/// setuid-root.
#[test]
fn ids_past_32_bits_are_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let out = dir.path().join("initrd.img");
    for (key, value) in [("uid", "4294967296"), ("gid", "4294967296")] {
        tar_with_pax(&tar, &pax_record(key, value.as_bytes()));
        let err = write_initramfs(&tar, &out).unwrap_err().to_string();
        assert!(
            err.contains("\"./init\"")
                && err.contains(&format!("{key} {value} does not fit in 32 bits")),
            "{err}"
        );
        assert!(!out.exists());
    }
    tar_with_pax(&tar, &pax_record("uid", b"4294967295"));
    write_initramfs(&tar, &out).unwrap();
}

/// The rootfs tar contract, checked by the shared reader: a child before its parent, a path
/// listed twice and an unsorted pair are refused, naming the entry, and leave no output.
#[test]
fn rootfs_tar_contract_breaches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let out = dir.path().join("initrd.img");
    use tar::EntryType::{Directory as D, Regular as F};
    let cases: [(&[(&str, tar::EntryType)], &str); 3] = [
        (
            &[("./", D), ("./bin/sh", F), ("./bin/", D)],
            "entry \"./bin/sh\": its parent directory \"./bin/\" is not in the tar before it",
        ),
        (
            &[("./", D), ("./init", F), ("./init", F)],
            "entry \"./init\" is listed twice",
        ),
        (
            &[("./", D), ("./b", F), ("./a", F)],
            "entry \"./a\" comes after \"./b\" but sorts before it",
        ),
    ];
    for (entries, expected) in cases {
        let mut t = Vec::new();
        for (name, kind) in entries {
            push_ustar(&mut t, name, *kind, 0o755, 1_700_000_000, b"");
        }
        t.extend_from_slice(&[0u8; 1024]);
        fs::write(&tar, t).unwrap();
        let err = write_initramfs(&tar, &out).unwrap_err().to_string();
        assert!(err.contains(expected), "{entries:?}: {err}");
        assert!(!out.exists());
    }
}
