//! End-to-end: a layer whose PAX headers hold values with newline and '=' bytes (an xattr value
//! `a\nb=c`, as binary attributes such as `security.capability` may be; a file name with a
//! newline) goes through every tool that reads tars, run as a user runs them. The tar crate used
//! to split PAX records at newlines and fail with "malformed pax extension" (or silently lose the
//! xattr, or the long name after it). The layer is written here byte by byte, so no tar library
//! decides what the records look like.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use icos_common::tarread::TarReader;
use icos_testsupport::pax_record;

const EPOCH: &str = "1700000000";

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    field[..text.len()].copy_from_slice(text.as_bytes());
}

/// A ustar header block (names up to 100 bytes; longer ones go in a PAX `path` record).
fn header(name: &[u8], typeflag: u8, size: u64, mode: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let name = &name[..name.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_650_000_000);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A layer tar: `(name, typeflag, data, PAX records before it)`, then the end-of-archive marker.
fn layer(entries: &[(&str, u8, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut t = Vec::new();
    let mut push = |h: [u8; 512], data: &[u8]| {
        t.extend_from_slice(&h);
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    };
    for (name, typeflag, data, pax) in entries {
        if !pax.is_empty() {
            push(header(b"PaxHeader", b'x', pax.len() as u64, 0o644), pax);
        }
        let mode = if *typeflag == b'5' { 0o755 } else { 0o644 };
        push(
            header(name.as_bytes(), *typeflag, data.len() as u64, mode),
            data,
        );
    }
    t.extend_from_slice(&[0u8; 1024]);
    t
}

fn long_name() -> String {
    format!("usr/share/{}", "n".repeat(120))
}

/// The layer of the tests: `/etc/nl` with the xattr `user.nl` = `a\nb=c` (followed by an mtime
/// record), and a long-named file whose xattr value `\n=\n` comes before its `path` record.
fn xattr_layer(long_content: &[u8]) -> Vec<u8> {
    let long = long_name();
    layer(&[
        ("etc/", b'5', b"", Vec::new()),
        (
            "etc/nl",
            b'0',
            b"newline xattr\n",
            [
                pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
                pax_record("mtime", b"1600000000.5"),
            ]
            .concat(),
        ),
        ("usr/", b'5', b"", Vec::new()),
        ("usr/share/", b'5', b"", Vec::new()),
        (
            &long,
            b'0',
            long_content,
            [
                pax_record("SCHILY.xattr.user.z", b"\n=\n"),
                pax_record("path", long.as_bytes()),
            ]
            .concat(),
        ),
    ])
}

fn bin(name: &str) -> &'static str {
    match name {
        "rootfs" => env!("CARGO_BIN_EXE_icos-rootfs"),
        "ext4" => env!("CARGO_BIN_EXE_icos-ext4"),
        "vfat" => env!("CARGO_BIN_EXE_icos-vfat"),
        "initramfs" => env!("CARGO_BIN_EXE_icos-initramfs"),
        "diff" => env!("CARGO_BIN_EXE_icos-diff"),
        other => panic!("no tool {other}"),
    }
}

fn run(tool: &str, cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin(tool))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

fn ok(tool: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "icos-{tool} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Builds `name`.tar and `name`/rootfs.manifest.json under `work` from the layer bytes.
fn rootfs(work: &Path, name: &str, layer_bytes: &[u8]) -> (PathBuf, serde_json::Value) {
    let src = work.join(format!("{name}-src"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("layer.tar"), layer_bytes).unwrap();
    fs::write(
        src.join("image.toml"),
        "[[layer]]\nsource = \"layer.tar\"\n",
    )
    .unwrap();
    fs::create_dir_all(work.join(name)).unwrap();
    let tar = work.join(format!("{name}.tar"));
    let manifest = work.join(name).join("rootfs.manifest.json");
    ok(
        "rootfs",
        run(
            "rootfs",
            work,
            &[
                "--spec",
                src.join("image.toml").to_str().unwrap(),
                "--out",
                tar.to_str().unwrap(),
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        ),
    );
    let manifest = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    (tar, manifest)
}

fn tool_output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

#[test]
fn newline_and_equals_in_pax_values_go_through_every_tool() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let long = long_name();
    let (tar, manifest) = rootfs(work, "a", &xattr_layer(b"long file A\n"));

    // icos-rootfs: the values are kept byte for byte, in the manifest (hex) and in the tar.
    let entries = manifest["entries"].as_array().unwrap();
    let entry = |p: &str| {
        entries
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in the manifest"))
    };
    assert_eq!(entry("/etc/nl")["xattrs"]["user.nl"], "610a623d63");
    assert_eq!(entry("/etc/nl")["mtime"], 1_600_000_000);
    assert_eq!(entry(&format!("/{long}"))["xattrs"]["user.z"], "0a3d0a");
    let bytes = fs::read(&tar).unwrap();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"30 SCHILY.xattr.user.nl=a\nb=c\n"));
    assert!(has(b"27 SCHILY.xattr.user.z=\n=\n\n"));
    let mut reader = TarReader::new(&bytes[..]).require_end_marker();
    let mut xattrs = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        for (k, v) in e.xattrs() {
            xattrs.push((e.path.clone(), k.to_vec(), v.to_vec()));
        }
    }
    assert_eq!(
        xattrs,
        [
            (
                b"./etc/nl".to_vec(),
                b"user.nl".to_vec(),
                b"a\nb=c".to_vec()
            ),
            (
                format!("./{long}").into_bytes(),
                b"user.z".to_vec(),
                b"\n=\n".to_vec()
            ),
        ]
    );
    let listing = tool_output("tar", &["-tvf", tar.to_str().unwrap()]);
    assert!(
        listing.status.success() && listing.stderr.is_empty(),
        "GNU tar: {}",
        String::from_utf8_lossy(&listing.stderr)
    );

    // icos-ext4: the attributes are in the image.
    let img = work.join("a.ext4");
    let tar_arg = tar.to_str().unwrap();
    ok(
        "ext4",
        run(
            "ext4",
            work,
            &[
                "--rootfs",
                tar_arg,
                "--out",
                img.to_str().unwrap(),
                "--seed",
                "s",
            ],
        ),
    );
    for (path, name, value) in [
        ("/etc/nl".to_string(), "user.nl", &b"a\nb=c"[..]),
        (format!("/{long}"), "user.z", b"\n=\n"),
    ] {
        let out = tool_output(
            "/usr/sbin/debugfs",
            &[
                "-R",
                &format!("ea_get -f /dev/stdout {path} {name}"),
                img.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, value, "{path} {name}");
    }
    let fsck = tool_output("/usr/sbin/e2fsck", &["-fn", img.to_str().unwrap()]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    // icos-vfat: FAT has no xattrs, but the tree must be read, long name included.
    let esp = work.join("a.vfat");
    ok(
        "vfat",
        run(
            "vfat",
            work,
            &[
                "--tree",
                tar_arg,
                "--out",
                esp.to_str().unwrap(),
                "--seed",
                "s",
                "--size",
                "40MiB",
            ],
        ),
    );
    for (path, want) in [
        ("::etc/nl".to_string(), &b"newline xattr\n"[..]),
        (format!("::{long}"), b"long file A\n"),
    ] {
        let out = tool_output("mtype", &["-i", esp.to_str().unwrap(), &path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, want, "{path}");
    }

    // icos-initramfs: newc cannot carry xattrs; the xattr is seen and named, not a parse error
    // (and not silently dropped).
    let initrd = work.join("initrd.img");
    let out = run(
        "initramfs",
        work,
        &["--tree", tar_arg, "--out", initrd.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"./etc/nl\": has xattrs, which a newc initramfs cannot carry"),
        "{stderr}"
    );
    assert!(!initrd.exists());

    // icos-diff: B differs in the long-named file; diffoscope gets that file out of both rootfs
    // tars, reading past the records with newlines. A stand-in diffoscope shows what it got.
    let (tar_b, _) = rootfs(work, "b", &xattr_layer(b"long file B\n"));
    let fake_bin = work.join("fake-bin");
    fs::create_dir(&fake_bin).unwrap();
    let fake = fake_bin.join("diffoscope");
    fs::write(&fake, "#!/bin/sh\ncat \"$3\" \"$4\"\nexit 1\n").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(bin("diff"))
        .args(["a", "b", "--diffoscope", "--rootfs-tar-a"])
        .arg(&tar)
        .arg("--rootfs-tar-b")
        .arg(&tar_b)
        .current_dir(work)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "diffoscope output for /{long}:\nlong file A\nlong file B\n"
        )),
        "{stdout}"
    );
}

#[test]
fn a_long_name_with_a_newline_reaches_the_initramfs_whole() {
    // No xattrs here (newc has no place for them): the PAX `path` record itself holds a newline,
    // after a comment that holds one too. icos-rootfs writes the name back as a PAX record.
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let name = format!("bin/{}\nsecond line={}", "n".repeat(100), "m".repeat(10));
    let layer_bytes = layer(&[
        ("bin/", b'5', b"", Vec::new()),
        (
            &name,
            b'0',
            b"#!/bin/sh\n",
            [
                pax_record("comment", b"one\ntwo"),
                pax_record("path", name.as_bytes()),
            ]
            .concat(),
        ),
    ]);
    let (tar, manifest) = rootfs(work, "tree", &layer_bytes);
    assert!(manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == format!("/{name}")));
    let initrd = work.join("initrd.img");
    ok(
        "initramfs",
        run(
            "initramfs",
            work,
            &[
                "--tree",
                tar.to_str().unwrap(),
                "--out",
                initrd.to_str().unwrap(),
            ],
        ),
    );
    let mut cpio = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(fs::File::open(&initrd).unwrap()),
        &mut cpio,
    )
    .unwrap();
    let want = [name.as_bytes(), b"\0"].concat();
    assert!(
        cpio.windows(want.len()).any(|w| w == want),
        "the initramfs lacks the whole name"
    );
}
