//! Packs, sums and manifests checked with GNU tar, zstd and sha256sum.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use icos_common::{sha256_file, SourceDateEpoch};
use icos_release::manifest::{
    build_manifest, write_manifest, InputRef, ManifestError, ManifestInputs, ToolRef,
};
use icos_release::pack::{pack, PackError, PackInput, PackOptions};
use icos_testsupport::{noise, run_checker};

const MIB: u64 = 1 << 20;
const SDE: u64 = 1_700_000_000;

/// Runs a program; fails (never skips) when it is missing, naming the apt package.
fn run(program: &str, package: &str, args: &[&str], dir: &Path) -> (bool, String) {
    run_checker(
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("TZ", "UTC"),
        package,
    )
}

/// Sparse test files: data, holes, a trailing hole, a trailing partial block, all zeros, empty.
fn inputs(dir: &Path) -> Vec<PackInput> {
    let mk = |name: &str, len: u64, chunks: &[(u64, usize, u64)]| {
        let p = dir.join(name);
        let f = fs::File::create(&p).unwrap();
        f.set_len(len).unwrap();
        for &(off, n, seed) in chunks {
            f.write_all_at(&noise(n, seed), off).unwrap();
        }
        PackInput {
            path: p,
            name: name.to_string(),
        }
    };
    vec![
        // a disk: data at the start, in the middle (unaligned), a hole at the end
        mk(
            "disk.img",
            48 * MIB,
            &[(0, 70_000, 1), (20 * MIB + 100, 5000, 2)],
        ),
        // ends with data in a partial block
        mk(
            "root.ext4",
            8 * MIB + 123,
            &[(MIB, 4096, 3), (8 * MIB, 123, 4)],
        ),
        // dense: no zero block at all
        mk("dense.bin", 3 * 4096 + 7, &[(0, 3 * 4096 + 7, 5)]),
        mk("zeros.bin", MIB, &[]),
        mk("empty", 0, &[]),
    ]
}

fn opts(threads: u32) -> PackOptions {
    PackOptions {
        source_date_epoch: SourceDateEpoch(SDE),
        threads: Some(threads),
    }
}

#[test]
fn packs_restore_with_gnu_tar_and_are_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ins = inputs(dir);
    let a = dir.join("a.tar.zst");
    let b = dir.join("b.tar.zst");
    let c = dir.join("c.tar.zst");
    let ra = pack(&ins, &a, &opts(1)).unwrap();
    let rb = pack(&ins, &b, &opts(2)).unwrap();
    let rc = pack(
        &ins,
        &c,
        &PackOptions {
            source_date_epoch: SourceDateEpoch(SDE),
            threads: None,
        },
    )
    .unwrap();
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "1 and 2 zstd workers give different archives"
    );
    assert!(
        fs::read(&a).unwrap() == fs::read(&c).unwrap(),
        "a second run differs"
    );
    assert_eq!(ra, rb);
    assert_eq!(ra, rc);
    assert_eq!(
        (ra.sha256, ra.size),
        sha256_file(&a).unwrap(),
        "the streamed digest is the file's"
    );
    assert!(ra.size < 200_000, "holes were stored: {} bytes", ra.size);

    let (ok, text) = run("zstd", "zstd", &["-t", "-q", a.to_str().unwrap()], dir);
    assert!(ok, "zstd -t: {text}");

    let (ok, listing) = run("tar", "tar", &["--zstd", "-tvf", a.to_str().unwrap()], dir);
    assert!(ok, "{listing}");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), ins.len(), "{listing}");
    for (line, input) in lines.iter().zip(&ins) {
        let size = fs::metadata(&input.path).unwrap().len();
        let want = format!("-rw-r--r-- 0/0 {size:>13} 2023-11-14 22:13 {}", input.name);
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            want.split_whitespace().collect::<Vec<_>>(),
            "{listing}"
        );
    }

    for (how, args) in [
        ("tar --zstd", vec!["--zstd", "-xf", "../a.tar.zst"]),
        (
            "zstd -dc | tar",
            vec!["-c", "zstd -dc ../a.tar.zst | tar -xf -"],
        ),
    ] {
        let out = dir.join(format!("x-{}", how.len()));
        fs::create_dir(&out).unwrap();
        let (ok, text) = if how == "tar --zstd" {
            run("tar", "tar", &args, &out)
        } else {
            run("sh", "dash", &args, &out)
        };
        assert!(ok, "{how}: {text}");
        for input in &ins {
            let restored = out.join(&input.name);
            assert_eq!(
                sha256_file(&restored).unwrap(),
                sha256_file(&input.path).unwrap(),
                "{how}: {}",
                input.name
            );
        }
        // GNU tar restores the holes as holes
        let md = fs::metadata(out.join("disk.img")).unwrap();
        assert!(
            md.blocks() * 512 < 4 * MIB,
            "{how}: disk.img restored dense ({} blocks)",
            md.blocks()
        );
        assert_eq!(md.mtime(), SDE as i64);
    }

    // the name maps to the archive entry
    let renamed = vec![PackInput {
        path: ins[0].path.clone(),
        name: "images/disk.img".into(),
    }];
    pack(&renamed, &b, &opts(2)).unwrap();
    let (_, listing) = run("tar", "tar", &["--zstd", "-tf", b.to_str().unwrap()], dir);
    assert_eq!(listing.trim(), "images/disk.img");
}

#[test]
fn sparse_files_larger_than_8_gib_round_trip() {
    // 9 GiB apparent, 8 KiB of data: the size only fits the PAX realsize record
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let big = dir.join("big.img");
    let f = fs::File::create(&big).unwrap();
    let size = 9u64 << 30;
    f.set_len(size).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", size - 4).unwrap();
    let out = dir.join("big.tar.zst");
    pack(
        &[PackInput {
            path: big.clone(),
            name: "big.img".into(),
        }],
        &out,
        &opts(2),
    )
    .unwrap();
    let (ok, listing) = run("tar", "tar", &["--zstd", "-tvf", "big.tar.zst"], dir);
    assert!(
        ok && listing.contains(&size.to_string()) && listing.contains("big.img"),
        "{listing}"
    );
    let x = dir.join("x");
    fs::create_dir(&x).unwrap();
    let (ok, text) = run("tar", "tar", &["--zstd", "-xf", "../big.tar.zst"], &x);
    assert!(ok, "{text}");
    let r = fs::File::open(x.join("big.img")).unwrap();
    assert_eq!(r.metadata().unwrap().len(), size);
    let mut b = [0u8; 4];
    r.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(&b, b"head");
    r.read_exact_at(&mut b, size - 4).unwrap();
    assert_eq!(&b, b"tail");
    r.read_exact_at(&mut b, size / 2).unwrap();
    assert_eq!(b, [0; 4]);
}

#[test]
fn pack_refuses_bad_requests_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = dir.join("f");
    fs::write(&f, b"x").unwrap();
    let out = dir.join("o.tar.zst");
    let cases: Vec<(Vec<PackInput>, &str)> = vec![
        (vec![], "nothing to pack"),
        (
            vec![
                PackInput {
                    path: f.clone(),
                    name: "a".into(),
                },
                PackInput {
                    path: f.clone(),
                    name: "a".into(),
                },
            ],
            "two files",
        ),
        (
            vec![PackInput {
                path: f.clone(),
                name: "../a".into(),
            }],
            "'..'",
        ),
        (
            vec![PackInput {
                path: dir.join("missing"),
                name: "m".into(),
            }],
            "missing",
        ),
    ];
    for (ins, want) in cases {
        let e: PackError = pack(&ins, &out, &opts(1)).unwrap_err();
        assert!(
            e.to_string().contains(want),
            "{e} does not mention {want:?}"
        );
        assert!(!out.exists());
    }
    assert_eq!(
        fs::read_dir(dir).unwrap().count(),
        1,
        "temporary files left behind"
    );
}

fn rootfs_manifest(path: &Path, epoch: u64) {
    let h = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let json = serde_json::json!({
        "schema": "icos.rootfs-manifest/v1",
        "tool": {"name": "icos-rootfs", "version": "0.1.0"},
        "source_date_epoch": epoch,
        "inputs": {
            "base": {"reference": format!("oci:base@{}", h('1')), "manifest": h('1'), "config": h('2'),
                     "layers": [{"digest": h('3'), "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 10}]},
            "spec": {"path": "ic-os/image.toml", "sha256": h('4')},
            "files": [{"path": "files/motd", "sha256": h('5'), "size": 12}],
            "extra_layers": [{"path": "extra.tar", "sha256": h('6'), "size": 10240}]
        },
        "output": {"sha256": h('7'), "size": 1234567},
        "entries": [
            {"path": "/", "type": "dir", "mode": "0755", "uid": 0, "gid": 0, "mtime": epoch},
            {"path": "/etc", "type": "dir", "mode": "0755", "uid": 0, "gid": 0, "mtime": epoch},
            {"path": "/etc/motd", "type": "file", "mode": "0644", "uid": 0, "gid": 0, "mtime": epoch, "size": 12, "sha256": h('5')}
        ]
    });
    fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[test]
fn manifest_is_stable_and_records_what_went_in_and_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rootfs = dir.join("rootfs.manifest.json");
    rootfs_manifest(&rootfs, SDE);
    // a real disk report from icos-disk
    fs::write(dir.join("root.img"), noise(100_000, 1)).unwrap();
    let layout = dir.join("layout.toml");
    fs::write(&layout, "[[partition]]\nname=\"root\"\ntype=\"linux-root-x86-64\"\nsize=\"auto\"\nimage=\"root.img\"\n").unwrap();
    let disk_opts = icos_disk::DiskOptions {
        seed: "s".into(),
        images: BTreeMap::new(),
        disk_size: None,
    };
    let disk = icos_disk::build_disk(&layout, &dir.join("disk.img"), &disk_opts).unwrap();
    let report = dir.join("disk.json");
    icos_disk::write_report(&disk, &report).unwrap();
    fs::write(
        dir.join("root.params.json"),
        r#"{"uuid": "x", "block_size": 4096}"#,
    )
    .unwrap();
    let art = pack(
        &[PackInput {
            path: dir.join("disk.img"),
            name: "disk.img".into(),
        }],
        &dir.join("disk-img.tar.zst"),
        &opts(2),
    )
    .unwrap();

    let m = ManifestInputs {
        image: "default".into(),
        source_date_epoch: SourceDateEpoch(SDE),
        seed: "s".into(),
        rootfs_manifest: rootfs.clone(),
        disk_report: report.clone(),
        fs_params: vec![("root".into(), dir.join("root.params.json"))],
        artifacts: vec![dir.join("disk-img.tar.zst"), dir.join("disk.img")],
        tools: vec![ToolRef {
            name: "icos-tools".into(),
            version: "0.1.0".into(),
            digest: None,
            package: None,
        }],
        inputs: vec![InputRef {
            name: "kernel".into(),
            uri: None,
            digest: art.sha256,
            size: None,
        }],
    };
    let one = dir.join("one.json");
    let two = dir.join("two.json");
    let d1 = write_manifest(&build_manifest(&m).unwrap(), &one).unwrap();
    let d2 = write_manifest(&build_manifest(&m).unwrap(), &two).unwrap();
    assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());
    assert_eq!(d1, d2);
    assert_eq!(d1, sha256_file(&one).unwrap().0);

    let v: serde_json::Value = serde_json::from_slice(&fs::read(&one).unwrap()).unwrap();
    assert_eq!(v["schema"], "icos.build-manifest/v1");
    let names: Vec<&str> = v["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "base",
            "base:config",
            "base:layer:0",
            "ic-os/image.toml",
            "files/motd",
            "extra.tar",
            "kernel"
        ]
    );
    assert_eq!(
        v["inputs"][0]["uri"],
        format!("oci:base@sha256:{}", "1".repeat(64))
    );
    assert_eq!(v["rootfs"]["entries"], 3);
    assert_eq!(
        v["rootfs"]["tar_sha256"],
        format!("sha256:{}", "7".repeat(64))
    );
    assert_eq!(
        v["rootfs"]["manifest_sha256"],
        sha256_file(&rootfs).unwrap().0.to_string()
    );
    assert_eq!(v["disk"]["sha256"], disk.sha256.to_string());
    assert_eq!(v["disk"]["partitions"][0]["name"], "root");
    assert_eq!(v["disk"]["partitions"][0]["filesystem"]["block_size"], 4096);
    assert_eq!(v["disk"]["partitions"][0]["guid"], disk.partitions[0].guid);

    // artifact digests agree with sha256sum
    let (ok, out) = run(
        "sha256sum",
        "coreutils",
        &["disk-img.tar.zst", "disk.img"],
        dir,
    );
    assert!(ok);
    for (line, a) in out.lines().zip(v["artifacts"].as_array().unwrap()) {
        let (hex, name) = line.split_once("  ").unwrap();
        assert_eq!(a["name"], name);
        assert_eq!(a["sha256"], format!("sha256:{hex}"));
        assert_eq!(a["size"], fs::metadata(dir.join(name)).unwrap().len());
    }

    // the tools-identity file of the Bazel-built tools
    let identity = dir.join("tools-identity.txt");
    let (ones, twos, threes, fours) = (
        "1".repeat(64),
        "2".repeat(64),
        "3".repeat(64),
        "4".repeat(64),
    );
    let identity_text = format!(
        "icos-tools 0.1.0\nCargo.lock sha256:00\nrustc 1.96.0 (abc 2026-01-01)\nbinary: rustc\n\
         host: x86_64-unknown-linux-gnu\ncargo 1.96.0 (def 2026-01-01)\n\
         cc: x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0\n\
         deb cargo-web 1.96.0+dfsg1-1~deb12u2 sha256:{threes}\n\
         deb gcc-12 12.2.0-14 sha256:{fours}\n\
         deb rustc-web 1.96.0+dfsg1-1~deb12u2 sha256:{ones}\n\
         bin icos-ext4 sha256:{twos}\n"
    );
    fs::write(&identity, &identity_text).unwrap();
    let tools = icos_release::manifest::tools_from_identity(&identity).unwrap();
    let names: Vec<(&str, &str)> = tools
        .iter()
        .map(|t| (t.name.as_str(), t.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("icos-tools", "0.1.0"),
            ("icos-ext4", "0.1.0"),
            ("rustc", "1.96.0 (abc 2026-01-01)"),
            ("cargo", "1.96.0 (def 2026-01-01)"),
            ("cc", "x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0"),
            ("deb:cargo-web", "1.96.0+dfsg1-1~deb12u2"),
            ("deb:gcc-12", "12.2.0-14"),
            ("deb:rustc-web", "1.96.0+dfsg1-1~deb12u2"),
        ]
    );
    assert_eq!(tools[0].digest, Some(sha256_file(&identity).unwrap().0));
    assert_eq!(
        tools[1].digest.unwrap().hex(),
        twos,
        "a binary carries its digest"
    );
    assert_eq!(
        tools[7].digest.unwrap().hex(),
        ones,
        "a package carries its .deb's digest"
    );
    // Every tool carries a digest: the compilers that of the pinned .deb that ships them.
    assert!(tools.iter().all(|t| t.digest.is_some()), "{tools:?}");
    let via: Vec<(&str, Option<&str>, String)> = tools[2..5]
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.package.as_deref(),
                t.digest.unwrap().hex(),
            )
        })
        .collect();
    assert_eq!(
        via,
        [
            ("rustc", Some("deb:rustc-web"), ones.clone()),
            ("cargo", Some("deb:cargo-web"), threes.clone()),
            ("cc", Some("deb:gcc-12"), fours.clone()),
        ]
    );
    // A compiler without its package, or with a package of another version, is refused.
    let without_gcc = identity_text.replace(&format!("deb gcc-12 12.2.0-14 sha256:{fours}\n"), "");
    fs::write(&identity, without_gcc).unwrap();
    let e = icos_release::manifest::tools_from_identity(&identity).unwrap_err();
    assert!(
        e.to_string()
            .contains("is shipped by none of its pinned packages (deb gcc-12)"),
        "{e}"
    );
    fs::write(
        &identity,
        identity_text.replace("rustc 1.96.0 (abc", "rustc 1.95.0 (abc"),
    )
    .unwrap();
    let e = icos_release::manifest::tools_from_identity(&identity).unwrap_err();
    assert!(e.to_string().contains("mixes two toolchains"), "{e}");
    fs::write(&identity, "rustc 1.95.0\n").unwrap();
    let e = icos_release::manifest::tools_from_identity(&identity).unwrap_err();
    assert!(e.to_string().contains("icos-tools VERSION"), "{e}");
    fs::write(&identity, "icos-tools 0.1.0\nbin icos-ext4 sha256:zz\n").unwrap();
    let e = icos_release::manifest::tools_from_identity(&identity).unwrap_err();
    assert!(e.to_string().contains("bin icos-ext4 sha256:zz"), "{e}");
    fs::write(&identity, "icos-tools 0.1.0\ndeb rustc-web sha256:{ones}\n").unwrap();
    let e = icos_release::manifest::tools_from_identity(&identity).unwrap_err();
    assert!(e.to_string().contains("malformed line"), "{e}");

    // inconsistent inputs are refused
    let mut bad = m.clone();
    bad.source_date_epoch = SourceDateEpoch(SDE + 1);
    assert!(matches!(
        build_manifest(&bad),
        Err(ManifestError::EpochMismatch { .. })
    ));
    let mut bad = m.clone();
    bad.fs_params = vec![("esp".into(), dir.join("root.params.json"))];
    let e = build_manifest(&bad).unwrap_err();
    assert!(e.to_string().contains("no partition \"esp\""), "{e}");
    let mut bad = m.clone();
    bad.inputs.push(InputRef {
        name: "base".into(),
        uri: None,
        digest: art.sha256,
        size: None,
    });
    assert!(matches!(
        build_manifest(&bad),
        Err(ManifestError::DuplicateInput { .. })
    ));
    let mut bad = m.clone();
    bad.rootfs_manifest = dir.join("nope.json");
    let e = build_manifest(&bad).unwrap_err();
    assert!(e.to_string().contains("nope.json"), "{e}");
}
