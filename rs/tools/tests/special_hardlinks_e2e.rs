//! End-to-end (issue 13): hardlinks to a fifo, a character device, a block device and a symlink,
//! within a layer and across layers, stay links through icos-rootfs (type `1` entries naming the
//! group's first path), and one inode through icos-ext4 (checked with e2fsck -fn and debugfs) and
//! icos-initramfs (checked by extracting with GNU cpio); the initramfs writes a link to a symlink
//! as a second symlink, since the kernel's unpacker cannot link symlinks. The same layer from a
//! real `docker save` archive gives the same tar. icos-rootfs used to split every such link into
//! separate inodes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output};

use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

const EPOCH: &str = "1700000000";

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_650_000_000);
    h.set_size(0);
    h
}

/// Layer entries: (path, kind, mode, link target, device numbers).
type Spec<'a> = (&'a str, tar::EntryType, u32, &'a str, (u32, u32));

fn layer(entries: &[Spec<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(path, kind, mode, target, (major, minor)) in entries {
        let mut h = header(kind, mode);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        if target.is_empty() {
            b.append_data(&mut h, path, &[][..]).unwrap();
        } else {
            b.append_link(&mut h, path, target).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Layer 1: a second name for each of a fifo, a char device, a block device and two symlinks; a
/// fifo with three names.
fn lower() -> Vec<u8> {
    layer(&[
        ("dev/", Directory, 0o755, "", (0, 0)),
        ("dev/null", Char, 0o666, "", (1, 3)),
        ("dev/null.link", Link, 0o666, "dev/null", (0, 0)),
        ("dev/sda", Block, 0o660, "", (8, 0)),
        ("dev/sda.link", Link, 0o660, "dev/sda", (0, 0)),
        ("run/fifo", Fifo, 0o600, "", (0, 0)),
        ("run/fifo.link", Link, 0o600, "run/fifo", (0, 0)),
        // The second name sorts first: it becomes the symlink entry, the first name the link.
        ("lib/ld.so", Symlink, 0o777, "ld-2.so", (0, 0)),
        ("lib/ld.link", Link, 0o777, "lib/ld.so", (0, 0)),
        ("old/sh", Symlink, 0o777, "busybox", (0, 0)),
        ("old/sh.link", Link, 0o777, "old/sh", (0, 0)),
        ("x/a", Fifo, 0o640, "", (0, 0)),
        ("x/b", Link, 0o640, "x/a", (0, 0)),
        ("x/c", Link, 0o640, "x/a", (0, 0)),
    ])
}

/// Layer 2: links to layer 1's specials (one through its second name), a whiteout of one name of
/// a group, and a replaced link target.
fn upper() -> Vec<u8> {
    let mut tar = layer(&[
        ("usr/fifo3", Link, 0o600, "run/fifo", (0, 0)),
        ("dev/null2", Link, 0o666, "dev/null.link", (0, 0)),
        ("x/.wh.a", Regular, 0o644, "", (0, 0)),
    ]);
    // A regular file over the symlink old/sh: old/sh.link keeps the symlink, alone.
    tar.truncate(tar.len() - 1024);
    let mut b = tar::Builder::new(tar);
    let mut h = header(Regular, 0o755);
    h.set_size(4);
    b.append_data(&mut h, "old/sh", &b"new\n"[..]).unwrap();
    b.into_inner().unwrap()
}

/// (typeflag, link name) of every member of the rootfs tar, by name.
const EXPECTED: &[(&str, char, &str)] = &[
    ("./", '5', ""),
    ("./dev/", '5', ""),
    ("./dev/null", '3', ""),
    ("./dev/null.link", '1', "./dev/null"),
    ("./dev/null2", '1', "./dev/null"),
    ("./dev/sda", '4', ""),
    ("./dev/sda.link", '1', "./dev/sda"),
    ("./lib/", '5', ""),
    ("./lib/ld.link", '2', "ld-2.so"),
    ("./lib/ld.so", '1', "./lib/ld.link"),
    ("./old/", '5', ""),
    ("./old/sh", '0', ""),
    ("./old/sh.link", '2', "busybox"),
    ("./run/", '5', ""),
    ("./run/fifo", '6', ""),
    ("./run/fifo.link", '1', "./run/fifo"),
    ("./usr/", '5', ""),
    ("./usr/fifo3", '1', "./run/fifo"),
    ("./x/", '5', ""),
    ("./x/b", '6', ""),
    ("./x/c", '1', "./x/b"),
];

/// The name groups that must be one inode, with their link counts.
const GROUPS: &[&[&str]] = &[
    &["dev/null", "dev/null.link", "dev/null2"],
    &["dev/sda", "dev/sda.link"],
    &["run/fifo", "run/fifo.link", "usr/fifo3"],
    &["x/b", "x/c"],
    &["lib/ld.link", "lib/ld.so"],
];

fn run(bin: &str, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn members(tar_path: &Path) -> Vec<(String, char, String)> {
    let data = fs::read(tar_path).unwrap();
    let mut archive = tar::Archive::new(&data[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default();
            (name, e.header().entry_type().as_byte() as char, link)
        })
        .collect()
}

/// `debugfs -R "stat PATH"`: (inode number, link count, type).
fn ext4_inode(img: &Path, path: &str) -> (u64, u64, String) {
    let out = Command::new("debugfs")
        .args(["-R", &format!("stat /{path}")])
        .arg(img)
        .output()
        .expect("debugfs (e2fsprogs)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| -> String {
        let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text}")) + key.len();
        text[at..].split_whitespace().next().unwrap().to_string()
    };
    (
        field("Inode:").parse().unwrap(),
        field("Links:").parse().unwrap(),
        field("Type:"),
    )
}

/// Builds the rootfs tar with `base_args` (the base and the spec) in `dir`, then checks it, the
/// ext4 image and the initramfs made from it. Returns the tar's bytes.
fn check_pipeline(dir: &Path, base_args: &[&str]) -> Vec<u8> {
    let mut args = base_args.to_vec();
    args.extend(["--out", "rootfs.tar", "--manifest", "rootfs.json"]);
    run(env!("CARGO_BIN_EXE_icos-rootfs"), dir, &args);

    // The tar: each group's first path carries the type, the others are links to it.
    let expected: Vec<(String, char, String)> = EXPECTED
        .iter()
        .map(|(n, t, l)| (n.to_string(), *t, l.to_string()))
        .collect();
    assert_eq!(members(&dir.join("rootfs.tar")), expected);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("rootfs.json")).unwrap()).unwrap();
    let entry = |p: &str| {
        manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("/dev/null2")["type"], "hardlink");
    assert_eq!(entry("/dev/null2")["target"], "/dev/null");
    assert_eq!(entry("/dev/null2")["mode"], "0666");
    assert_eq!(entry("/dev/sda")["type"], "block");
    assert_eq!(entry("/lib/ld.so")["target"], "/lib/ld.link");

    // ext4: one inode per group, link count = the group's size; e2fsck agrees.
    run(
        env!("CARGO_BIN_EXE_icos-ext4"),
        dir,
        &[
            "--rootfs",
            "rootfs.tar",
            "--out",
            "root.ext4",
            "--seed",
            "s",
        ],
    );
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(dir.join("root.ext4"))
        .output()
        .expect("e2fsck (e2fsprogs)");
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let img = dir.join("root.ext4");
    for group in GROUPS {
        let first = ext4_inode(&img, group[0]);
        assert_eq!(first.1, group.len() as u64, "{group:?}: {first:?}");
        for name in &group[1..] {
            assert_eq!(ext4_inode(&img, name), first, "{name} vs {}", group[0]);
        }
    }
    assert_eq!(ext4_inode(&img, "run/fifo").2, "FIFO");
    assert_eq!(ext4_inode(&img, "dev/null").2, "character");
    assert_eq!(ext4_inode(&img, "dev/sda").2, "block");
    assert_eq!(ext4_inode(&img, "lib/ld.so").2, "symlink");
    assert_eq!(ext4_inode(&img, "old/sh.link").1, 1);

    // initramfs: GNU cpio lists every name and, extracting, links fifos and devices as the
    // kernel does (same ino, nlink > 1); a link to a symlink is a symlink of its own.
    run(
        env!("CARGO_BIN_EXE_icos-initramfs"),
        dir,
        &["--tree", "rootfs.tar", "--out", "initrd.img"],
    );
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(dir.join("initrd.img")).unwrap())
        .read_to_end(&mut cpio)
        .unwrap();
    fs::write(dir.join("initrd.cpio"), &cpio).unwrap();
    let list = Command::new("cpio")
        .args(["-it", "--quiet", "-F", "initrd.cpio"])
        .current_dir(dir)
        .output()
        .expect("GNU cpio");
    assert!(list.status.success());
    let listed: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let want: Vec<String> = EXPECTED
        .iter()
        .map(
            |(n, _, _)| match n.trim_start_matches("./").trim_end_matches('/') {
                "" => ".".to_string(),
                n => n.to_string(),
            },
        )
        .collect();
    assert_eq!(listed, want);
    let headers = newc_headers(&cpio);
    for group in GROUPS {
        let is_symlink = group[0].starts_with("lib/");
        let inos: Vec<(u32, u32)> = group.iter().map(|n| headers[*n]).collect();
        if is_symlink {
            assert!(inos.iter().all(|&(_, nlink)| nlink == 1), "{inos:?}");
            assert_ne!(inos[0].0, inos[1].0, "{group:?}");
        } else {
            let n = group.len() as u32;
            assert!(
                inos.iter().all(|&i| i == (inos[0].0, n)),
                "{group:?}: {inos:?}"
            );
        }
    }

    if running_as_root() {
        let tree = dir.join("extracted");
        fs::create_dir(&tree).unwrap();
        let extract = Command::new("cpio")
            .args(["-idm", "--quiet", "-F"])
            .arg(dir.join("initrd.cpio"))
            .current_dir(&tree)
            .output()
            .unwrap();
        assert!(
            extract.status.success(),
            "cpio -idm: {}",
            String::from_utf8_lossy(&extract.stderr)
        );
        for group in GROUPS {
            let metas: Vec<_> = group
                .iter()
                .map(|n| fs::symlink_metadata(tree.join(n)).unwrap())
                .collect();
            if group[0].starts_with("lib/") {
                for (n, m) in group.iter().zip(&metas) {
                    assert!(m.file_type().is_symlink(), "{n}");
                    assert_eq!(fs::read_link(tree.join(n)).unwrap(), Path::new("ld-2.so"));
                }
            } else {
                for (n, m) in group.iter().zip(&metas) {
                    assert_eq!(m.ino(), metas[0].ino(), "{n} vs {}", group[0]);
                    assert_eq!(m.nlink(), group.len() as u64, "{n}");
                }
            }
        }
        let null = fs::symlink_metadata(tree.join("dev/null2")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert!(fs::symlink_metadata(tree.join("dev/sda.link"))
            .unwrap()
            .file_type()
            .is_block_device());
        assert!(fs::symlink_metadata(tree.join("usr/fifo3"))
            .unwrap()
            .file_type()
            .is_fifo());
    } else {
        println!("not root: the cpio extraction check (mknod) is skipped");
    }
    fs::read(dir.join("rootfs.tar")).unwrap()
}

/// Linux's dev_t encoding (glibc's makedev) for small numbers.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// (ino, nlink) of every member of a newc archive, by name (parsed here, independently of the
/// writer: 110-byte headers of hex fields, name and data padded to 4 bytes).
fn newc_headers(cpio: &[u8]) -> BTreeMap<String, (u32, u32)> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut out = BTreeMap::new();
    let mut at = 0;
    loop {
        let h = &cpio[at..at + 110];
        assert_eq!(&h[..6], b"070701");
        let field = |i: usize| hex(&h[6 + 8 * i..14 + 8 * i]);
        let (ino, nlink, size, namesize) = (field(0), field(4), field(6), field(11));
        let name = std::str::from_utf8(&cpio[at + 110..at + 110 + namesize as usize - 1])
            .unwrap()
            .to_string();
        at = (at + 110 + namesize as usize).div_ceil(4) * 4;
        at = (at + size as usize).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            return out;
        }
        out.insert(name, (ino, nlink));
    }
}

const SPEC: &str = "[[layer]]\nsource = \"upper.tar\"\n";

#[test]
fn hardlinked_specials_stay_linked_through_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("lower.tar"), lower()).unwrap();
    fs::write(dir.path().join("upper.tar"), upper()).unwrap();
    fs::write(
        dir.path().join("image.toml"),
        "[[layer]]\nsource = \"lower.tar\"\n[[layer]]\nsource = \"upper.tar\"\n",
    )
    .unwrap();
    check_pipeline(dir.path(), &["--spec", "image.toml"]);
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

/// The lower layer through Docker (`docker import`, then `docker save`), the upper one from the
/// spec: the same tar as from the layer files.
#[test]
fn hardlinked_specials_from_a_docker_save_archive() {
    if docker(&["info"]).status.code() != Some(0) {
        println!("skipped: no docker daemon");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("lower.tar"), lower()).unwrap();
    fs::write(d.join("upper.tar"), upper()).unwrap();
    let tag = format!("icos-special-links:{}", std::process::id());
    let import = docker(&["import", d.join("lower.tar").to_str().unwrap(), &tag]);
    assert!(
        import.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let id = String::from_utf8(import.stdout).unwrap().trim().to_string();
    let save = docker(&["save", "-o", d.join("saved.tar").to_str().unwrap(), &tag]);
    let _ = docker(&["rmi", "-f", &tag]);
    assert!(
        save.status.success(),
        "docker save: {}",
        String::from_utf8_lossy(&save.stderr)
    );
    fs::write(d.join("image.toml"), SPEC).unwrap();
    let from_docker = check_pipeline(
        d,
        &[
            "--base",
            &format!("docker-archive:saved.tar@{id}"),
            "--spec",
            "image.toml",
        ],
    );

    let plain = tempfile::tempdir().unwrap();
    fs::write(plain.path().join("lower.tar"), lower()).unwrap();
    fs::write(plain.path().join("upper.tar"), upper()).unwrap();
    fs::write(
        plain.path().join("image.toml"),
        "[[layer]]\nsource = \"lower.tar\"\n[[layer]]\nsource = \"upper.tar\"\n",
    )
    .unwrap();
    let from_files = check_pipeline(plain.path(), &["--spec", "image.toml"]);
    assert_eq!(from_docker, from_files);
}
