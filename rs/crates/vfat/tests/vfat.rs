//! Builds real FAT images and checks them with dosfstools and mtools.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use icos_common::SourceDateEpoch;
use icos_testsupport::{noise, pax_record, push_ustar, run_checker};
use icos_vfat::{build_vfat, volume_id, VfatError, VfatOptions};

/// Runs an external checker; fails (never skips) when it is missing, naming the apt package.
fn run(program: &str, package: &str, args: &[&str]) -> (bool, String) {
    run_checker(
        Command::new(program)
            .args(args)
            .env("MTOOLS_SKIP_CHECK", "0"),
        package,
    )
}

enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Symlink(&'a str, &'a str),
}

/// A tar in the rootfs tar format (./ names, 0/0, mtime fixed), entries in the given order.
fn make_tar(path: &Path, items: &[Item]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let header = |t: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(t);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    };
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    b.append_data(&mut h, "./", &[][..]).unwrap();
    for item in items {
        match item {
            Item::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, format!("./{p}/"), &[][..]).unwrap();
            }
            Item::File(p, data) => {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
                b.append_data(&mut h, format!("./{p}"), *data).unwrap();
            }
            Item::Link(p, target) => {
                let mut h = header(tar::EntryType::Link, 0, 0o644);
                b.append_link(&mut h, format!("./{p}"), format!("./{target}"))
                    .unwrap();
            }
            Item::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                b.append_link(&mut h, format!("./{p}"), target).unwrap();
            }
        }
    }
    b.into_inner().unwrap();
}

fn opts(seed: &str, size: u64, epoch: u64) -> VfatOptions {
    VfatOptions {
        size,
        seed: seed.into(),
        label: "ESP".into(),
        source_date_epoch: SourceDateEpoch(epoch),
    }
}

const MIB: u64 = 1 << 20;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tar: PathBuf,
    big: Vec<u8>,
}

fn esp_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tar = root.join("esp.tar");
    let big = noise(3 * MIB as usize + 123, 7);
    // Deliberately not in sorted order: the image must not depend on the tar's order.
    make_tar(
        &tar,
        &[
            Item::Dir("loader"),
            Item::Dir("loader/entries"),
            Item::File("loader/entries/icos.conf", b"title icos\nlinux /vmlinuz\n"),
            Item::File("loader/loader.conf", b"default icos.conf\ntimeout 0\n"),
            Item::Dir("EFI"),
            Item::Dir("EFI/BOOT"),
            Item::File("EFI/BOOT/BOOTX64.EFI", b"MZ not really a PE image"),
            Item::File(
                "a very long file name with spaces and more than 13 characters.txt",
                b"long\n",
            ),
            Item::File("vmlinuz", &big),
            Item::File("empty", b""),
            Item::Link("EFI/BOOT/copy.efi", "EFI/BOOT/BOOTX64.EFI"),
        ],
    );
    Fixture {
        _dir: dir,
        root,
        tar,
        big,
    }
}

/// The names in an `mdir` listing: the long name after the time, else the short name.
fn mdir_names(listing: &str) -> Vec<String> {
    listing
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
        .collect()
}

#[test]
fn image_is_clean_readable_and_reproducible() {
    let fx = esp_fixture();
    let a = fx.root.join("a.vfat");
    let b = fx.root.join("b.vfat");
    let params = build_vfat(&fx.tar, &a, &opts("seed-1", 64 * MIB, 1_700_000_000)).unwrap();
    build_vfat(&fx.tar, &b, &opts("seed-1", 64 * MIB, 1_700_000_000)).unwrap();
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "two builds differ"
    );
    assert_eq!(fs::metadata(&a).unwrap().len(), 64 * MIB);
    assert_eq!(params.fat_type, "FAT32");
    assert_eq!(params.size_bytes, 64 * MIB);
    assert_eq!(params.cluster_size, 512);

    let img = a.to_str().unwrap();
    let (ok, text) = run("fsck.fat", "dosfstools", &["-n", "-v", img]);
    assert!(ok, "fsck.fat -n failed:\n{text}");
    for bad in [
        "Expected",
        "Bad short",
        "uninitialized",
        "differences",
        "Dirty",
        "Moving",
    ] {
        assert!(!text.contains(bad), "fsck.fat reports {bad:?}:\n{text}");
    }

    for (path, want) in [
        ("::EFI/BOOT/BOOTX64.EFI", &b"MZ not really a PE image"[..]),
        ("::EFI/BOOT/copy.efi", &b"MZ not really a PE image"[..]),
        (
            "::loader/entries/icos.conf",
            &b"title icos\nlinux /vmlinuz\n"[..],
        ),
        (
            "::a very long file name with spaces and more than 13 characters.txt",
            &b"long\n"[..],
        ),
        ("::empty", &b""[..]),
    ] {
        let out = Command::new("mtype")
            .args(["-i", img, path])
            .output()
            .expect("mtype: apt-get install mtools");
        assert!(
            out.status.success(),
            "mtype {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, want, "content of {path}");
    }
    let out = Command::new("mtype")
        .args(["-i", img, "::vmlinuz"])
        .output()
        .expect("mtype: apt-get install mtools");
    assert!(out.stdout == fx.big, "vmlinuz content differs");

    // Sorted directory entries, the label, the serial number and the timestamps (UTC).
    let (ok, listing) = run("mdir", "mtools", &["-i", img, "::"]);
    assert!(ok, "{listing}");
    let names = mdir_names(&listing);
    assert_eq!(
        names,
        [
            "EFI",
            "a very long file name with spaces and more than 13 characters.txt",
            "empty",
            "loader",
            "vmlinuz"
        ],
        "{listing}"
    );
    assert!(listing.contains("Volume in drive : is ESP"), "{listing}");
    assert!(listing.contains(&params.volume_id), "{listing}");
    assert!(
        listing.contains("2023-11-14  22:13"),
        "SOURCE_DATE_EPOCH 1700000000 is 2023-11-14 22:13:20 UTC:\n{listing}"
    );
    let (_, sub) = run("mdir", "mtools", &["-i", img, "::EFI/BOOT"]);
    let sub_names = mdir_names(&sub);
    assert_eq!(sub_names, [".", "..", "BOOTX64.EFI", "copy.efi"], "{sub}");
}

#[test]
fn parents_missing_from_the_tar_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("t.tar");
    make_tar(
        &tar,
        &[
            Item::File("EFI/BOOT/BOOTX64.EFI", b"efi"),
            Item::File("EFI/Linux/icos.efi", b"uki"),
        ],
    );
    let out = dir.path().join("o.vfat");
    build_vfat(&tar, &out, &opts("s", 40 * MIB, 1_700_000_000)).unwrap();
    let img = out.to_str().unwrap();
    let (ok, text) = run("fsck.fat", "dosfstools", &["-n", img]);
    assert!(ok, "{text}");
    let (ok, listing) = run("mdir", "mtools", &["-i", img, "::EFI"]);
    assert!(ok, "{listing}");
    assert_eq!(mdir_names(&listing), [".", "..", "BOOT", "Linux"]);
    let out2 = Command::new("mtype")
        .args(["-i", img, "::EFI/Linux/icos.efi"])
        .output()
        .unwrap();
    assert_eq!(out2.stdout, b"uki");
}

#[test]
fn volume_id_follows_the_seed() {
    let fx = esp_fixture();
    let a = fx.root.join("a.vfat");
    let b = fx.root.join("b.vfat");
    let pa = build_vfat(&fx.tar, &a, &opts("seed-1", 40 * MIB, 1_700_000_000)).unwrap();
    let pb = build_vfat(&fx.tar, &b, &opts("seed-2", 40 * MIB, 1_700_000_000)).unwrap();
    assert_ne!(pa.volume_id, pb.volume_id);
    // The boot sector (FAT32: offset 0x43, little-endian) holds the id the params report.
    for (img, seed, p) in [(&a, "seed-1", &pa), (&b, "seed-2", &pb)] {
        let bytes = fs::read(img).unwrap();
        let on_disk = u32::from_le_bytes(bytes[0x43..0x47].try_into().unwrap());
        assert_eq!(on_disk, volume_id(seed, "ESP"));
        // the backup boot sector (sector 6) agrees
        assert_eq!(&bytes[..512], &bytes[6 * 512..7 * 512]);
        let (_, listing) = run("mdir", "mtools", &["-i", img.to_str().unwrap(), "::"]);
        assert!(
            listing.contains(&format!("Volume Serial Number is {}", p.volume_id)),
            "{listing}"
        );
    }
}

#[test]
fn epoch_before_1980_is_clamped_and_epoch_changes_the_image() {
    let fx = esp_fixture();
    let a = fx.root.join("a.vfat");
    let b = fx.root.join("b.vfat");
    build_vfat(&fx.tar, &a, &opts("s", 40 * MIB, 0)).unwrap();
    build_vfat(&fx.tar, &b, &opts("s", 40 * MIB, 1_000)).unwrap();
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "both epochs clamp to 1980-01-01"
    );
    let (_, listing) = run("mdir", "mtools", &["-i", a.to_str().unwrap(), "::"]);
    assert!(listing.contains("1980-01-01   0:00"), "{listing}");
    let (ok, text) = run("fsck.fat", "dosfstools", &["-n", a.to_str().unwrap()]);
    assert!(ok, "{text}");
    build_vfat(&fx.tar, &b, &opts("s", 40 * MIB, 1_700_000_000)).unwrap();
    assert_ne!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
}

#[test]
fn bad_inputs_are_refused_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.vfat");
    let tar = dir.path().join("t.tar");

    make_tar(&tar, &[Item::Dir("EFI"), Item::Symlink("EFI/link", "BOOT")]);
    let e = build_vfat(&tar, &out, &opts("s", 40 * MIB, 1)).unwrap_err();
    assert!(matches!(e, VfatError::Unsupported { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("EFI/link") && msg.contains("symlink"), "{msg}");
    assert!(!out.exists());

    make_tar(
        &tar,
        &[Item::File("readme", b"a"), Item::File("README", b"b")],
    );
    let e = build_vfat(&tar, &out, &opts("s", 40 * MIB, 1)).unwrap_err();
    assert!(e.to_string().contains("letter case"), "{e}");

    make_tar(&tar, &[Item::File("a:b", b"a")]);
    let e = build_vfat(&tar, &out, &opts("s", 40 * MIB, 1)).unwrap_err();
    assert!(e.to_string().contains("a:b"), "{e}");

    make_tar(&tar, &[Item::File("f", b"x")]);
    let e = build_vfat(&tar, &out, &opts("s", 16 * MIB, 1)).unwrap_err();
    assert!(matches!(e, VfatError::BadSize { .. }), "{e}");
    assert!(e.to_string().contains("too small for FAT32"), "{e}");
    let e = build_vfat(&tar, &out, &opts("s", 40 * MIB + 1, 1)).unwrap_err();
    assert!(e.to_string().contains("multiple of 512"), "{e}");
    let mut o = opts("s", 40 * MIB, 1);
    o.label = "esp".into();
    let e = build_vfat(&tar, &out, &o).unwrap_err();
    assert!(e.to_string().contains("upper case"), "{e}");

    let big = noise(45 * MIB as usize, 3);
    make_tar(&tar, &[Item::File("big", &big)]);
    let e = build_vfat(&tar, &out, &opts("s", 40 * MIB, 1)).unwrap_err();
    assert!(matches!(e, VfatError::Full { .. }), "{e}");
    assert!(e.to_string().contains("increase --size"), "{e}");
    assert!(!out.exists(), "a failed build left {out:?}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary files left behind"
    );

    let e = build_vfat(
        &dir.path().join("missing.tar"),
        &out,
        &opts("s", 40 * MIB, 1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing.tar"), "{e}");
}

#[test]
fn xattr_values_with_newlines_are_no_obstacle() {
    // A rootfs tar whose PAX header holds an xattr value with 0x0A and '=' bytes, followed by
    // the path record of a long name: FAT ignores the xattr but must get the name and the data.
    let dir = tempfile::tempdir().unwrap();
    let long = format!("./EFI/{}.efi", "n".repeat(110));
    let records = [
        pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
        pax_record("path", long.as_bytes()),
    ]
    .concat();
    let mut t = Vec::new();
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8]| {
        push_ustar(&mut t, name, kind, 0o644, 1_600_000_000, data)
    };
    add("./", tar::EntryType::Directory, b"");
    add("./EFI/", tar::EntryType::Directory, b"");
    add("./@PaxHeader", tar::EntryType::XHeader, &records);
    add("./EFI/truncated", tar::EntryType::Regular, b"MZ boot");
    t.extend_from_slice(&[0u8; 1024]);
    let tar = dir.path().join("esp.tar");
    fs::write(&tar, &t).unwrap();
    let img = dir.path().join("esp.vfat");
    build_vfat(&tar, &img, &opts("s", 64 * MIB, 1_700_000_000)).unwrap();
    let (ok, text) = run("fsck.fat", "dosfstools", &["-n", img.to_str().unwrap()]);
    assert!(ok, "fsck.fat -n failed:\n{text}");
    let out = Command::new("mtype")
        .args(["-i", img.to_str().unwrap(), &format!("::{}", &long[2..])])
        .output()
        .expect("mtype: apt-get install mtools");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"MZ boot");
}

#[test]
fn epoch_beyond_fat_dates_is_refused_not_wrapped() {
    // The CLI caps SOURCE_DATE_EPOCH at 2106; a library caller could pass more, and FAT's 7-bit
    // year would wrap it to 1980 + (year - 1980) % 128.
    let fx = esp_fixture();
    let out = fx.root.join("o.vfat");
    let e = build_vfat(&fx.tar, &out, &opts("s", 40 * MIB, 4_354_819_200)).unwrap_err();
    assert!(
        e.to_string()
            .contains("SOURCE_DATE_EPOCH 4354819200 is after 2107-12-31"),
        "{e}"
    );
    assert!(!out.exists());
}
