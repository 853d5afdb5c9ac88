//! FAT's name rules: every name FAT can hold lands as itself, next to names that only fatfs
//! 0.3.6 would confuse with it; names and paths FAT cannot hold are refused by name. Checked with
//! fsck.fat and mtools (the host kernel has no vfat driver).

use std::fs;
use std::path::Path;
use std::process::Command;

use icos_common::SourceDateEpoch;
use icos_testsupport::{pax_record, push_ustar, run_checker};
use icos_vfat::{build_vfat, VfatError, VfatOptions};

const MIB: u64 = 1 << 20;

/// A rootfs-format tar of `(path, Some(data))` files and `(path, None)` directories, in the
/// given order; paths longer than a ustar name get a PAX `path` record.
fn tar_of(path: &Path, items: &[(&str, Option<&[u8]>)]) {
    let mut t = Vec::new();
    push_ustar(
        &mut t,
        "./",
        tar::EntryType::Directory,
        0o755,
        1_600_000_000,
        b"",
    );
    for (p, data) in items {
        let (name, kind, mode) = match data {
            None => (format!("./{p}/"), tar::EntryType::Directory, 0o755),
            Some(_) => (format!("./{p}"), tar::EntryType::Regular, 0o644),
        };
        let body = data.unwrap_or_default();
        if name.len() > 100 {
            let rec = pax_record("path", name.as_bytes());
            push_ustar(
                &mut t,
                "./@PaxHeader",
                tar::EntryType::XHeader,
                0o644,
                0,
                &rec,
            );
            push_ustar(&mut t, "./long", kind, mode, 1_600_000_000, body);
        } else {
            push_ustar(&mut t, &name, kind, mode, 1_600_000_000, body);
        }
    }
    t.extend_from_slice(&[0u8; 1024]);
    fs::write(path, t).unwrap();
}

fn opts() -> VfatOptions {
    VfatOptions {
        size: 40 * MIB,
        seed: "names".into(),
        label: "ESP".into(),
        source_date_epoch: SourceDateEpoch(1_700_000_000),
    }
}

fn fsck_clean(img: &Path) {
    let (ok, text) = run_checker(
        Command::new("fsck.fat").args(["-n", "-v", img.to_str().unwrap()]),
        "dosfstools",
    );
    assert!(ok, "fsck.fat -n failed:\n{text}");
    for bad in [
        "Bad short",
        "Expected",
        "differences",
        "Duplicate",
        "Unfinished",
    ] {
        assert!(!text.contains(bad), "fsck.fat reports {bad:?}:\n{text}");
    }
}

/// mtools in a UTF-8 locale, so that non-ASCII names pass as themselves.
fn mtools(program: &str, args: &[&str]) -> (bool, Vec<u8>) {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): apt-get install mtools"));
    (out.status.success(), out.stdout)
}

fn content(img: &Path, path: &str) -> Vec<u8> {
    let (ok, out) = mtools(
        "mtype",
        &["-i", img.to_str().unwrap(), &format!("::{path}")],
    );
    assert!(ok, "mtype ::{path} failed");
    out
}

/// The long names `mdir` lists in `dir` (short names where an entry has no long one).
fn listed(img: &Path, dir: &str) -> Vec<String> {
    let (ok, out) = mtools("mdir", &["-i", img.to_str().unwrap(), &format!("::{dir}")]);
    assert!(ok);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("2023-11-14  22:13"))
        .map(|l| {
            let long = l.split_once("22:13").unwrap().1.trim();
            if long.is_empty() {
                l.split_whitespace().next().unwrap().to_string()
            } else {
                long.to_string()
            }
        })
        .filter(|n| n != "." && n != "..")
        .collect()
}

fn build_ok(items: &[(&str, Option<&[u8]>)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("esp.tar");
    tar_of(&tar, items);
    let img = dir.path().join("esp.vfat");
    build_vfat(&tar, &img, &opts()).unwrap_or_else(|e| panic!("build failed: {e}"));
    fsck_clean(&img);
    (dir, img)
}

fn refuse(items: &[(&str, Option<&[u8]>)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("esp.tar");
    tar_of(&tar, items);
    let img = dir.path().join("esp.vfat");
    let e = build_vfat(&tar, &img, &opts()).expect_err("accepted");
    assert!(!img.exists(), "output left under its final name");
    e.to_string()
}

#[test]
fn literal_short_names_and_generated_aliases_both_land() {
    // Sorted, LONGNAME1.TXT comes first and fatfs would give it the alias LONGNA~1.TXT, which
    // LONGNA~1.TXT then opened and overwrote. Now the literal names own their short names and
    // the long names take the next free aliases (past ~4, fatfs's checksum form).
    let files: [(&str, &[u8]); 7] = [
        ("LONGNAME1.TXT", b"long 1"),
        ("LONGNAME2.TXT", b"long 2"),
        ("LONGNA~1.TXT", b"literal 1"),
        ("LONGNA~2.TXT", b"literal 2"),
        ("longna~3.txt", b"literal 3, lower case"),
        ("LONGNA~4.TXT", b"literal 4"),
        ("sub/LONGNAME1.TXT", b"sub long"),
    ];
    let mut items: Vec<(&str, Option<&[u8]>)> =
        vec![("sub", None), ("sub/LONGNA~1.TXT", Some(b"sub literal"))];
    items.extend(files.iter().map(|(p, d)| (*p, Some(*d))));
    let (_dir, img) = build_ok(&items);
    for (path, data) in &items {
        if let Some(data) = data {
            assert_eq!(&content(&img, path), data, "content of {path}");
        }
    }
    let mut root = listed(&img, "");
    root.sort();
    assert_eq!(
        root,
        [
            "LONGNAME1.TXT",
            "LONGNAME2.TXT",
            "LONGNA~1.TXT",
            "LONGNA~2.TXT",
            "LONGNA~4.TXT",
            "longna~3.txt",
            "sub"
        ]
    );
    assert_eq!(listed(&img, "sub").len(), 2);
}

#[test]
fn long_and_unicode_names_land_as_themselves() {
    let e128 = "é".repeat(128); // 256 bytes of UTF-8, 128 UTF-16 units
    let e255 = "é".repeat(255);
    let items: Vec<(&str, Option<&[u8]>)> = vec![
        ("STRASSE", Some(b"upper")),
        ("straße", Some(b"lower")), // fatfs's full uppercase makes it "STRASSE"
        ("Xß", Some(b"x-sharp-s")),
        ("xss", Some(b"x-s-s")), // ASCII, but fatfs would find "Xß" for it
        ("FI", Some(b"F I")),
        ("ﬁ", Some(b"ligature")),
        (&e128, Some(b"128")),
        (&e255, Some(b"255")),
        ("emoji😀.efi", Some(b"beyond U+FFFF")),
        ("dir-é", None),
        ("dir-é/inner", Some(b"inner")),
    ];
    let (_dir, img) = build_ok(&items);
    for (path, data) in &items {
        if let (Some(data), false) = (data, path.contains('😀')) {
            assert_eq!(&content(&img, path), data, "content of {path}");
        }
    }
    let root = listed(&img, "");
    assert_eq!(root.len(), 10, "{root:?}");
    for name in ["straße", "STRASSE", "Xß", "xss", "ﬁ", "FI", &e128, &e255] {
        assert!(
            root.iter().any(|n| n == name),
            "{name} missing from {root:?}"
        );
    }
    // mtools 4.0.32 shows characters beyond U+FFFF as "__"; the slot itself must hold the
    // surrogate pair (units 6-11 of the one long-name slot: D83D DE00 . e f i).
    let bytes = fs::read(&img).unwrap();
    let units: Vec<u8> = [0xD83Du16, 0xDE00, 0x2E, 0x65, 0x66, 0x69]
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert!(
        bytes.windows(units.len()).any(|w| w == units),
        "no long-name slot holds the emoji's surrogate pair"
    );
    assert!(root.iter().any(|n| n == "emoji__.efi"), "{root:?}");
}

#[test]
fn names_fat_cannot_tell_apart_are_refused() {
    let err = refuse(&[("été", Some(b"a")), ("ÉTÉ", Some(b"b"))]);
    assert!(err.contains("differ only in letter case"), "{err}");
    // Parents missing from the tar count too: "efi" and "EFI" would be one directory.
    let err = refuse(&[("efi/a", Some(b"a")), ("EFI/b", Some(b"b"))]);
    assert!(
        err.contains("\"EFI\" and \"efi\" differ only in letter case"),
        "{err}"
    );
}

#[test]
fn paths_beyond_fats_260_characters_are_refused() {
    // "\d" 129 times: 258 units, 259 with one more character: the longest FAT path.
    let mut items = Vec::new();
    let mut p = String::from("d");
    for _ in 0..129 {
        items.push(p.clone());
        p.push_str("/d");
    }
    let last = format!("{}x", items.last().unwrap());
    let mut list: Vec<(&str, Option<&[u8]>)> = items.iter().map(|p| (p.as_str(), None)).collect();
    list.push((&last, Some(b"deepest")));
    let (_dir, img) = build_ok(&list);
    assert_eq!(content(&img, &last), b"deepest");

    let too_long = format!("{}xy", items.last().unwrap());
    list.pop();
    list.push((&too_long, Some(b"x")));
    let err = refuse(&list);
    assert!(
        err.contains("has a path of 260 UTF-16 units, more than FAT's 259"),
        "{err}"
    );

    // 2,000 levels: refused at the first path over the limit, without building anything.
    let deep: Vec<String> = (1..=2000).map(|n| vec!["d"; n].join("/")).collect();
    let list: Vec<(&str, Option<&[u8]>)> = deep.iter().map(|p| (p.as_str(), None)).collect();
    let err = refuse(&list);
    assert!(err.contains("more than FAT's 259"), "{err}");
}

#[test]
fn directories_and_files_beyond_fat_limits_are_refused() {
    // 33,000 short names take 66,000 entries of 32 bytes (one long-name and one short-name entry
    // each): more than a FAT directory holds. Refused while reading the tar.
    let names: Vec<String> = (0..33_000).map(|i| format!("big/f{i:05}")).collect();
    let mut list: Vec<(&str, Option<&[u8]>)> = vec![("big", None)];
    list.extend(names.iter().map(|n| (n.as_str(), Some(&b""[..]))));
    let err = refuse(&list);
    assert!(
        err.contains("entry \"big\" needs more than FAT's 65536 directory entries"),
        "{err}"
    );

    // A file of 4 GiB: FAT's size field has 32 bits. The tar only claims the size.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("esp.tar");
    let mut t = Vec::new();
    push_ustar(&mut t, "./", tar::EntryType::Directory, 0o755, 0, b"");
    let rec = pax_record("size", (1u64 << 32).to_string().as_bytes());
    push_ustar(
        &mut t,
        "./@PaxHeader",
        tar::EntryType::XHeader,
        0o644,
        0,
        &rec,
    );
    push_ustar(&mut t, "./vmlinuz", tar::EntryType::Regular, 0o644, 0, b"");
    t.extend_from_slice(&[0u8; 1024]);
    fs::write(&tar, t).unwrap();
    let img = dir.path().join("esp.vfat");
    let e = build_vfat(&tar, &img, &opts()).unwrap_err();
    assert!(matches!(e, VfatError::BadEntry { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("is 4294967296 bytes; a FAT file holds at most 4294967295 bytes"),
        "{e}"
    );
}
