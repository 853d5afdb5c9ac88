//! Builds real GPT disks and checks them with sgdisk, sfdisk and dd.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use icos_common::{seed, sha256_file, SourceDateEpoch};
use icos_disk::{build_disk, DiskError, DiskOptions, MIB};
use icos_testsupport::{noise, push_ustar, run_checker};

/// Runs an external checker; fails (never skips) when it is missing, naming the apt package.
fn run(program: &str, package: &str, args: &[&str]) -> (bool, String) {
    run_checker(Command::new(program).args(args), package)
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    layout: PathBuf,
    esp: PathBuf,
    root: PathBuf,
}

/// A real ESP (icos-vfat) and a 20 MiB "root" image that is mostly zeros.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let tar_path = dir.join("esp.tar");
    {
        // A rootfs tar as icos-rootfs writes it: ./ names, sorted, parents first.
        let mut t = Vec::new();
        for (p, data) in [
            ("./", None),
            ("./EFI/", None),
            ("./EFI/BOOT/", None),
            ("./EFI/BOOT/BOOTX64.EFI", Some(&b"MZ efi"[..])),
            ("./loader/", None),
            ("./loader/entries/", None),
            ("./loader/entries/icos.conf", Some(b"title icos\n")),
        ] {
            let (kind, mode) = match data {
                None => (tar::EntryType::Directory, 0o755),
                Some(_) => (tar::EntryType::Regular, 0o644),
            };
            push_ustar(&mut t, p, kind, mode, 0, data.unwrap_or_default());
        }
        t.extend_from_slice(&[0u8; 1024]);
        fs::write(&tar_path, t).unwrap();
    }
    let esp = dir.join("esp.vfat");
    icos_vfat::build_vfat(
        &tar_path,
        &esp,
        &icos_vfat::VfatOptions {
            size: 34 * MIB,
            seed: "s".into(),
            label: "ESP".into(),
            source_date_epoch: SourceDateEpoch(1_700_000_000),
        },
    )
    .unwrap();
    // 4 MiB + 1000 bytes (not a multiple of 1 MiB or of 4 KiB): data at the start, in the
    // middle and at the very end, zeros elsewhere.
    let mut root = vec![0u8; 4 * MIB as usize + 1000];
    root[..MIB as usize].copy_from_slice(&noise(MIB as usize, 1));
    root[2 * MIB as usize + 5..3 * MIB as usize].copy_from_slice(&noise(MIB as usize - 5, 2));
    let n = root.len();
    root[n - 10..].copy_from_slice(b"END OF ROO");
    let root_path = dir.join("root.ext4");
    fs::write(&root_path, &root).unwrap();
    let layout = dir.join("layout.toml");
    fs::write(
        &layout,
        r#"# test layout
[[partition]]
name = "esp"
type = "esp"
size = "36MiB"
image = "esp.vfat"

[[partition]]
name = "root"
type = "linux-root-x86-64"
size = "auto"
image = "root.ext4"

[[partition]]
name = "data"
type = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
size = "2MiB"
"#,
    )
    .unwrap();
    Fixture {
        _dir: tmp,
        dir,
        layout,
        esp,
        root: root_path,
    }
}

fn opts(seed: &str) -> DiskOptions {
    DiskOptions {
        seed: seed.into(),
        images: BTreeMap::new(),
        disk_size: None,
    }
}

fn dd(disk: &Path, offset: u64, len: u64) -> Vec<u8> {
    let out = Command::new("dd")
        .arg(format!("if={}", disk.display()))
        .args(["bs=512", "status=none"])
        .arg(format!("skip={}", offset / 512))
        .arg(format!("count={}", len.div_ceil(512)))
        .output()
        .expect("dd: apt-get install coreutils");
    assert!(out.status.success());
    out.stdout[..len as usize].to_vec()
}

#[test]
fn disk_is_valid_matches_the_layout_and_is_reproducible() {
    let fx = fixture();
    let a = fx.dir.join("a.img");
    let b = fx.dir.join("b.img");
    let report = build_disk(&fx.layout, &a, &opts("seed-1")).unwrap();
    let report_b = build_disk(&fx.layout, &b, &opts("seed-1")).unwrap();
    assert_eq!(report, report_b);
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "two builds differ"
    );

    // layout: esp at 1 MiB (36 MiB), root at 37 MiB (5 MiB = 4 MiB + 1000 rounded up), data at 42 MiB
    let size = fs::metadata(&a).unwrap().len();
    assert_eq!(size, (1 + 36 + 5 + 2 + 1) * MIB);
    assert_eq!(report.size, size);
    assert_eq!(
        report.sha256,
        sha256_file(&a).unwrap().0,
        "the streamed digest is the file's"
    );
    let offsets: Vec<(u64, u64)> = report
        .partitions
        .iter()
        .map(|p| (p.offset, p.size))
        .collect();
    assert_eq!(
        offsets,
        [(MIB, 36 * MIB), (37 * MIB, 5 * MIB), (42 * MIB, 2 * MIB)]
    );

    let img = a.to_str().unwrap();
    let (ok, text) = run("sgdisk", "gdisk", &["-v", img]);
    assert!(
        ok && text.contains("No problems found"),
        "sgdisk -v:\n{text}"
    );

    let (ok, dump) = run("sfdisk", "fdisk", &["--dump", img]);
    assert!(ok, "{dump}");
    let disk_guid = seed::format_uuid(&seed::derive_uuid("seed-1", "gpt:disk"));
    assert!(
        dump.to_lowercase()
            .contains(&format!("label-id: {disk_guid}")),
        "{dump}"
    );
    assert_eq!(report.disk_guid, disk_guid);
    assert!(
        dump.contains("label: gpt") && dump.contains("sector-size: 512"),
        "{dump}"
    );
    let parts: Vec<&str> = dump.lines().filter(|l| l.starts_with(img)).collect();
    let expect = [
        ("esp", 2048, 73728, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        ("root", 75776, 10240, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
        ("data", 86016, 4096, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    ];
    assert_eq!(parts.len(), 3, "{dump}");
    for (line, (name, start, sectors, type_)) in parts.iter().zip(expect) {
        let uuid = seed::format_uuid(&seed::derive_uuid(
            "seed-1",
            &format!("gpt:partition:{name}"),
        ))
        .to_uppercase();
        let want = format!(
            "start={start:>12}, size={sectors:>12}, type={type_}, uuid={uuid}, name=\"{name}\""
        );
        assert!(
            line.contains(&want),
            "sfdisk line\n  {line}\ndoes not contain\n  {want}"
        );
        let p = report.partitions.iter().find(|p| p.name == name).unwrap();
        assert_eq!(p.guid.to_uppercase(), uuid);
        assert_eq!(p.type_guid.to_uppercase(), type_);
        assert_eq!((p.first_lba, p.last_lba), (start, start + sectors - 1));
    }
    // sgdisk -i prints the same partition GUID
    let (_, info) = run("sgdisk", "gdisk", &["-i", "2", img]);
    assert!(
        info.contains(&format!(
            "Partition unique GUID: {}",
            report.partitions[1].guid.to_uppercase()
        )),
        "{info}"
    );

    // the partitions hold the images, byte for byte
    for (p, path) in [
        (&report.partitions[0], &fx.esp),
        (&report.partitions[1], &fx.root),
    ] {
        let want = fs::read(path).unwrap();
        assert!(
            dd(&a, p.offset, want.len() as u64) == want,
            "partition {} differs from its image",
            p.name
        );
        assert_eq!(p.image_size, want.len() as u64);
        assert_eq!(p.image_sha256, Some(sha256_file(path).unwrap().0));
    }
    assert_eq!(report.partitions[2].image_sha256, None);
    // the ESP inside the disk is still a clean FAT
    let esp_copy = fx.dir.join("esp-from-disk.vfat");
    fs::write(&esp_copy, dd(&a, MIB, 34 * MIB)).unwrap();
    let (ok, text) = run(
        "fsck.fat",
        "dosfstools",
        &["-n", esp_copy.to_str().unwrap()],
    );
    assert!(ok, "{text}");

    // sparse: 45 MiB disk, ~2 MiB of root data + the ESP's FAT and files allocated
    let allocated = fs::metadata(&a).unwrap().blocks() * 512;
    assert!(
        allocated < 8 * MIB,
        "{allocated} bytes allocated for a {size}-byte disk: not sparse"
    );
}

#[test]
fn seed_and_image_overrides_change_the_disk() {
    let fx = fixture();
    let a = fx.dir.join("a.img");
    let b = fx.dir.join("b.img");
    let ra = build_disk(&fx.layout, &a, &opts("seed-1")).unwrap();
    let rb = build_disk(&fx.layout, &b, &opts("seed-2")).unwrap();
    assert_ne!(ra.disk_guid, rb.disk_guid);
    assert_ne!(ra.partitions[0].guid, rb.partitions[0].guid);
    assert_ne!(ra.sha256, rb.sha256);

    // --image root=OTHER replaces the layout's image; an explicit --disk-size is honoured
    let other = fx.dir.join("other.img");
    fs::write(&other, noise(3 * MIB as usize, 9)).unwrap();
    let mut o = opts("seed-1");
    o.images.insert("root".into(), other.clone());
    o.disk_size = Some(64 * MIB);
    let r = build_disk(&fx.layout, &b, &o).unwrap();
    assert_eq!(r.size, 64 * MIB);
    assert_eq!(r.partitions[1].size, 3 * MIB);
    assert_eq!(
        r.partitions[1].image_sha256,
        Some(sha256_file(&other).unwrap().0)
    );
    let (ok, text) = run("sgdisk", "gdisk", &["-v", b.to_str().unwrap()]);
    assert!(ok && text.contains("No problems found"), "{text}");
}

#[test]
fn explicit_offsets_are_placed_and_checked() {
    let fx = fixture();
    let out = fx.dir.join("o.img");
    fs::write(
        &fx.layout,
        "[[partition]]\nname = \"b\"\ntype = \"linux-generic\"\nsize = \"2MiB\"\noffset = \"10MiB\"\n\
         [[partition]]\nname = \"a\"\ntype = \"linux-generic\"\nsize = 1048576\noffset = \"1MiB\"\n",
    )
    .unwrap();
    let r = build_disk(&fx.layout, &out, &opts("s")).unwrap();
    assert_eq!(r.partitions[0].offset, 10 * MIB);
    assert_eq!(r.partitions[1].offset, MIB);
    assert_eq!(r.size, 13 * MIB);
    let (ok, text) = run("sgdisk", "gdisk", &["-v", out.to_str().unwrap()]);
    assert!(ok && text.contains("No problems found"), "{text}");
}

fn expect_err(fx: &Fixture, layout: &str, o: DiskOptions, want: &[&str]) -> DiskError {
    fs::write(&fx.layout, layout).unwrap();
    let out = fx.dir.join("bad.img");
    let e = build_disk(&fx.layout, &out, &o).unwrap_err();
    let msg = e.to_string();
    for w in want {
        assert!(msg.contains(w), "error {msg:?} does not mention {w:?}");
    }
    assert!(!out.exists(), "a failed build left its output");
    e
}

#[test]
fn bad_layouts_are_refused_with_clear_errors() {
    let fx = fixture();
    let e = expect_err(
        &fx,
        "[[partition]]\nname=\"a\"\ntype=\"linux-generic\"\nsize=\"4MiB\"\noffset=\"1MiB\"\n\
         [[partition]]\nname=\"b\"\ntype=\"linux-generic\"\nsize=\"4MiB\"\noffset=\"4MiB\"\n",
        opts("s"),
        &["\"a\"", "\"b\"", "overlap"],
    );
    assert!(matches!(e, DiskError::Overlap { .. }));
    let e = expect_err(
        &fx,
        "[[partition]]\nname=\"root\"\ntype=\"linux-root-x86-64\"\nsize=\"1MiB\"\nimage=\"root.ext4\"\n",
        opts("s"),
        &["root.ext4", "larger than the partition"],
    );
    assert!(matches!(e, DiskError::ImageTooLarge { .. }));
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"linux-rooot\"\nsize=\"1MiB\"\n",
        opts("s"),
        &["linux-rooot", "esp", "linux-root-x86-64", "xbootldr"],
    );
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\n[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\n",
        opts("s"),
        &["\"x\"", "twice"],
    );
    let e = expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"auto\"\nimage=\"nope.vfat\"\n",
        opts("s"),
        &["nope.vfat", "\"x\""],
    );
    assert!(matches!(e, DiskError::Image { .. }));
    let mut o = opts("s");
    o.images.insert("y".into(), fx.root.clone());
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\n",
        o,
        &["no partition named \"y\""],
    );
    expect_err(
        &fx,
        "[[partition]]\nname=\"a-name-that-is-longer-than-thirty-six-units\"\ntype=\"esp\"\nsize=\"1MiB\"\n",
        opts("s"),
        &["36"],
    );
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1000\"\n",
        opts("s"),
        &["multiple of 512"],
    );
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\noffset=\"1000KiB\"\n",
        opts("s"),
        &["1 MiB"],
    );
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\nsizee=1\n",
        opts("s"),
        &["sizee"],
    );
    let mut o = opts("s");
    o.disk_size = Some(2 * MIB);
    expect_err(
        &fx,
        "[[partition]]\nname=\"x\"\ntype=\"esp\"\nsize=\"1MiB\"\n",
        o,
        &["backup GPT"],
    );
    assert_eq!(
        fs::read_dir(&fx.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("partial")
            })
            .count(),
        0,
        "temporary files left behind"
    );
}

#[test]
fn verity_params_give_the_root_hash_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("root.verity.json");
    let good = "ab".repeat(32);
    std::fs::write(
        &params,
        format!(r#"{{"schema": "icos.verity-params/v1", "root_hash": "{good}"}}"#),
    )
    .unwrap();
    assert_eq!(icos_disk::verity_root_hash(&params).unwrap(), good);
    for (content, expected) in [
        (
            format!(
                r#"{{"schema": "icos.verity-params/v1", "root_hash": "{}"}}"#,
                "AB".repeat(32)
            ),
            "64 lowercase hex",
        ),
        (
            r#"{"schema": "icos.ext4-params/v1", "root_hash": "x"}"#.to_string(),
            "schema",
        ),
        ("not json".to_string(), "not JSON"),
    ] {
        std::fs::write(&params, content).unwrap();
        let err = icos_disk::verity_root_hash(&params)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(expected) && err.contains("root.verity.json"),
            "{err}"
        );
    }
}

/// A partition image that changes between the plan and the copy fails the disk, and nothing
/// appears under the output's name.
#[test]
fn an_image_changed_after_planning_is_refused() {
    let fx = fixture();
    let out = fx.dir.join("o.img");
    let layout = icos_disk::read_layout(&fx.layout).unwrap();
    let plan = icos_disk::plan(&fx.layout, &layout, &opts("s")).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&fx.root)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    let e = icos_disk::write_disk(&plan, &out).unwrap_err();
    assert!(matches!(e, DiskError::ImageChanged { .. }), "{e}");
    assert!(e.to_string().contains("changed while it was copied"), "{e}");
    assert!(!out.exists());
}
