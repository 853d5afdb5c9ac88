//! Real images from real tars, checked with e2fsprogs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use icos_common::seed::{derive_uuid, format_uuid};
use icos_common::SourceDateEpoch;
use icos_ext4::{build_image, Ext4Params, ImageSize, NoProgress, Options};

const CAP: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn long_target() -> String {
    format!("../{}", "long-target-".repeat(10))
}

/// Everything the contract allows, plus a file fragmented over more than 4 block groups.
fn rich_rootfs() -> Vec<E> {
    let mut big = data(7, 24 << 20);
    big[(5 << 20)..(6 << 20)].fill(0); // a zero MiB: written sparse, read back as zeros
    let mut v = vec![
        e("", Body::Dir).mode(0o755),
        e("bin", Body::Dir),
        e("bin/ping", Body::File(data(1, 9000)))
            .mode(0o755)
            .xattr("security.capability", &CAP),
        e("bin/sudo", Body::File(data(2, 5000)))
            .mode(0o4755)
            .owner(0, 0),
        e("bin/sh", Body::Symlink("busybox".into())),
        e("bin/busybox", Body::File(data(3, 100_000))).mode(0o755),
        e("bin/long", Body::Symlink(long_target())),
        e("dev", Body::Dir),
        e("dev/null", Body::Char(1, 3)).mode(0o666),
        e("dev/sda", Body::Block(8, 0)).mode(0o660).owner(0, 6),
        e("dev/nvme", Body::Block(259, 70000)).mode(0o660),
        e("dev/fifo", Body::Fifo).mode(0o600),
        e("etc", Body::Dir),
        e("etc/empty", Body::File(Vec::new())),
        e("etc/big-xattr", Body::File(b"x\n".to_vec()))
            .xattr("user.big", &data(4, 1500))
            .xattr("user.small", b"1"),
        e("home", Body::Dir).mode(0o755),
        e("home/user", Body::Dir)
            .mode(0o700)
            .owner(70000, 3_000_000),
        e("home/user/notes", Body::File(b"hello\n".to_vec()))
            .owner(70000, 3_000_000)
            .mode(0o600),
        e("tmp", Body::Dir).mode(0o1777),
        e("usr", Body::Dir),
        e("usr/big", Body::File(big)),
        e("usr/bin", Body::Dir),
        e("usr/bin/link-a", Body::File(data(5, 4097))).mode(0o2755),
        e("usr/bin/link-b", Body::Link("usr/bin/link-a".into())),
        e("usr/bin/link-c", Body::Link("usr/bin/link-a".into())),
        e("many", Body::Dir),
        e("a/deeply/nested", Body::Dir),
        e("a", Body::Dir),
        e("a/deeply", Body::Dir),
        e("a/deeply/nested/file", Body::File(data(6, 123))).mtime(SDE + 5000), // clamped to SDE
    ];
    for i in 0..3000 {
        let body = if i % 3 == 0 {
            Body::File(Vec::new())
        } else {
            Body::File(format!("{i}\n").into_bytes())
        };
        v.push(e(&format!("many/file-with-a-longish-name-{i:05}"), body));
    }
    v
}

fn opts(seed: &str) -> Options {
    let mut o = Options::new(seed, SourceDateEpoch(SDE));
    o.blocks_per_group = 1024; // many small groups: backups, multi-group files, extent tree blocks
    o
}

fn build(tar: &Path, out: &Path, o: &Options) -> Ext4Params {
    build_image(tar, out, o, &mut NoProgress).unwrap_or_else(|e| panic!("build failed: {e}"))
}

fn stat(img: &Path, path: &str) -> String {
    debugfs(img, &format!("stat {path}"))
}

#[test]
fn rich_rootfs_is_clean_and_faithful() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let entries = rich_rootfs();
    write_tar(&tar, entries.clone());
    let img = dir.path().join("root.ext4");
    let p = build(&tar, &img, &opts("seed-1"));

    assert_fsck_clean(&img);

    // Superblock: seed-derived ids, label, times.
    let h = debugfs(&img, "stats");
    assert!(
        h.contains(&format!(
            "Filesystem UUID: {}",
            format_uuid(&derive_uuid("seed-1", "ext4:uuid:root"))
        )),
        "{h}"
    );
    assert!(h.contains(&format!("Directory Hash Seed: {}", p.hash_seed)));
    assert!(h.contains("Filesystem volume name: root"));
    let dumpe2fs = run("dumpe2fs", &["-h", img.to_str().unwrap()]);
    let dh = String::from_utf8_lossy(&dumpe2fs.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(dh.contains(&format!("Filesystem UUID: {}", p.uuid)), "{dh}");
    assert!(
        dh.contains("Filesystem created: Tue Nov 14 22:13:20 2023"),
        "{dh}"
    );
    assert!(
        dh.contains("Last write time: Tue Nov 14 22:13:20 2023"),
        "{dh}"
    );
    assert!(dh.contains(&format!("Free blocks: {}", p.free_blocks)));
    assert!(dh.contains(&format!("Inode count: {}", p.inodes_count)));
    assert!(dh.contains(
        "Filesystem features: ext_attr dir_index filetype extent sparse_super large_file huge_file dir_nlink extra_isize"
    ), "{dh}");

    // Owners, modes, times, links.
    let mtime_hex = format!("0x{:08x}:00000000", SDE - 1000);
    let s = stat(&img, "/bin/sudo");
    assert!(s.contains("Type: regular Mode: 04755"), "{s}");
    assert!(s.contains("User: 0 Group: 0"), "{s}");
    assert!(
        s.contains(&format!("mtime: {mtime_hex}")) && s.contains(&format!("crtime: {mtime_hex}")),
        "{s}"
    );
    assert!(
        s.contains(&format!("ctime: {mtime_hex}")) && s.contains(&format!("atime: {mtime_hex}")),
        "{s}"
    );
    let s = stat(&img, "/home/user/notes");
    assert!(
        s.contains("User: 70000 Group: 3000000") && s.contains("Mode: 0600"),
        "{s}"
    );
    let s = stat(&img, "/usr/bin/link-b");
    assert!(s.contains("Links: 3") && s.contains("Mode: 02755"), "{s}");
    let inode_a = debugfs(&img, "stat /usr/bin/link-a");
    assert_eq!(
        inode_a.split(" Type").next(),
        s.split(" Type").next(),
        "hardlinks share the inode"
    );
    let s = stat(&img, "/tmp");
    assert!(
        s.contains("Type: directory Mode: 01777") && s.contains("Links: 2"),
        "{s}"
    );
    let s = stat(&img, "/");
    // 2 + lost+found + 8 top-level directories
    assert!(s.contains("Links: 11"), "{s}");
    let s = stat(&img, "/a/deeply/nested/file");
    assert!(
        s.contains(&format!("mtime: 0x{SDE:08x}")),
        "clamped to SOURCE_DATE_EPOCH: {s}"
    );
    let s = stat(&img, "/lost+found");
    assert!(s.contains("Mode: 0700") && s.contains("Size: 16384"), "{s}");

    // Symlinks: fast in the inode, long in a block.
    let s = stat(&img, "/bin/sh");
    assert!(
        s.contains("Type: symlink") && s.contains("Fast link dest: \"busybox\""),
        "{s}"
    );
    let s = stat(&img, "/bin/long");
    assert!(
        s.contains("Type: symlink") && s.contains(&format!("Size: {}", long_target().len())),
        "{s}"
    );
    assert_eq!(debugfs_cat(&img, "/bin/long"), long_target().as_bytes());

    // Devices and fifo.
    let s = stat(&img, "/dev/null");
    assert!(
        s.contains("Type: character special Mode: 0666")
            && s.contains("Device major/minor number: 01:03"),
        "{s}"
    );
    let s = stat(&img, "/dev/sda");
    assert!(
        s.contains("Type: block special Mode: 0660") && s.contains("User: 0 Group: 6"),
        "{s}"
    );
    let s = stat(&img, "/dev/nvme");
    assert!(
        s.contains("(New-style) Device major/minor number: 259:70000"),
        "{s}"
    );
    assert!(stat(&img, "/dev/fifo").contains("Type: FIFO Mode: 0600"));

    // Xattrs: capability in the inode, a large one in an xattr block.
    let s = debugfs(&img, "ea_list /bin/ping");
    assert!(s.contains("security.capability (20)"), "{s}");
    let s = stat(&img, "/bin/ping");
    assert!(
        s.contains("File ACL: 0"),
        "capability should be in the inode: {s}"
    );
    let s = stat(&img, "/etc/big-xattr");
    assert!(
        !s.contains("File ACL: 0 "),
        "large xattr should be in a block: {s}"
    );
    let ea = run(
        "debugfs",
        &[
            "-R",
            "ea_get -f /dev/stdout /etc/big-xattr user.big",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(ea.stdout, data(4, 1500));

    // Fragmented file: more than 4 extents, so an extent tree with a leaf block.
    let s = stat(&img, "/usr/big");
    let extents = s.split("EXTENTS:").nth(1).unwrap_or("");
    assert!(
        extents.contains("(ETB0):"),
        "expected an extent tree block: {s}"
    );
    assert!(
        extents.matches("):").count() > 5,
        "expected more than 4 extents: {s}"
    );
    assert!(
        s.contains(&format!("Blockcount: {}", ((24 << 20) / 4096 + 1) * 8)),
        "data + tree block: {s}"
    );

    // Contents read back through e2fsprogs.
    for en in &entries {
        if let Body::File(d) = &en.body {
            if en.path.starts_with("many/") && !en.path.ends_with("00") {
                continue; // sample the 3000
            }
            assert_eq!(
                sha(&debugfs_cat(&img, &format!("/{}", en.path))),
                sha(d),
                "content of {}",
                en.path
            );
        }
    }
    let ls = run("debugfs", &["-R", "ls -l /many", img.to_str().unwrap()]);
    let n = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .filter(|l| l.contains("file-with-a-longish-name"))
        .count();
    assert_eq!(n, 3000);
    let s = stat(&img, "/many");
    assert!(
        !s.contains("Size: 4096 "),
        "3000 names need several directory blocks: {s}"
    );
}

#[test]
fn seed_changes_ids_and_nothing_else_changes_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    write_tar(&tar, rich_rootfs());
    let a = build(&tar, &dir.path().join("a.ext4"), &opts("seed-1"));
    let b = build(&tar, &dir.path().join("b.ext4"), &opts("seed-2"));
    assert_ne!(a.uuid, b.uuid);
    assert_ne!(a.hash_seed, b.hash_seed);
    assert_eq!(
        a.uuid,
        format_uuid(&derive_uuid("seed-1", "ext4:uuid:root"))
    );
    assert_eq!(
        b.uuid,
        format_uuid(&derive_uuid("seed-2", "ext4:uuid:root"))
    );
    let mut o = opts("seed-1");
    o.label = "other".into();
    let c = build(&tar, &dir.path().join("c.ext4"), &o);
    assert_ne!(a.uuid, c.uuid, "the label is part of the purpose");
    let ia = std::fs::read(dir.path().join("a.ext4")).unwrap();
    let ib = std::fs::read(dir.path().join("b.ext4")).unwrap();
    assert_eq!(ia.len(), ib.len());
    let differing: Vec<usize> = (0..ia.len()).filter(|&i| ia[i] != ib[i]).collect();
    assert!(!differing.is_empty());
    // Only superblock copies (uuid and hash seed fields) differ.
    for i in differing {
        let in_block = i % 4096;
        let in_sb = if i < 4096 {
            in_block.wrapping_sub(1024)
        } else {
            in_block
        };
        assert!(
            (0x68..0x78).contains(&in_sb) || (0xEC..0xFC).contains(&in_sb),
            "byte {i} differs"
        );
    }
}

#[test]
fn auto_size_equals_the_same_explicit_size_and_too_small_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    write_tar(&tar, rich_rootfs());
    let mut o = Options::new("s", SourceDateEpoch(SDE)); // default 32768 blocks per group
    let auto = build(&tar, &dir.path().join("auto.ext4"), &o);
    assert_eq!(auto.size_bytes % (1 << 20), 0);
    assert_fsck_clean(&dir.path().join("auto.ext4"));
    o.size = ImageSize::Bytes(auto.size_bytes);
    let fixed = build(&tar, &dir.path().join("fixed.ext4"), &o);
    assert_eq!(auto, fixed);
    assert_eq!(
        sha(&std::fs::read(dir.path().join("auto.ext4")).unwrap()),
        sha(&std::fs::read(dir.path().join("fixed.ext4")).unwrap())
    );

    // Larger than needed: still clean, and the headroom shows up as free blocks.
    o.size = ImageSize::Bytes(auto.size_bytes * 3);
    let big = build(&tar, &dir.path().join("big.ext4"), &o);
    assert!(big.free_blocks > auto.free_blocks);
    assert_fsck_clean(&dir.path().join("big.ext4"));

    o.size = ImageSize::Bytes(8 << 20);
    let out = dir.path().join("small.ext4");
    let err = build_image(&tar, &out, &o, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is too small")
            && err.contains("needs at least")
            && err.contains("--size auto"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        4,
        "no temporary file left behind"
    );
}

#[test]
fn output_is_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    write_tar(
        &tar,
        vec![e("", Body::Dir), e("zeros", Body::File(vec![0; 8 << 20]))],
    );
    let img = dir.path().join("root.ext4");
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.size = ImageSize::Bytes(256 << 20);
    build(&tar, &img, &o);
    assert_fsck_clean(&img);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&img).unwrap();
    assert_eq!(m.len(), 256 << 20);
    assert!(
        m.blocks() * 512 < 4 << 20,
        "{} bytes allocated for a 256 MiB image of zeros",
        m.blocks() * 512
    );
    assert_eq!(sha(&debugfs_cat(&img, "/zeros")), sha(&vec![0; 8 << 20]));
}

/// Builds in a child process with another working directory, umask, TZ and locale.
fn build_in_child(tar: &Path, cwd: &Path, umask: &str, tz: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" --ignored --exact child_build --nocapture"
        ))
        .arg(&exe)
        .current_dir(cwd)
        .env("ICOS_EXT4_CHILD_TAR", tar)
        .env("TZ", tz)
        .env("LC_ALL", if tz == "UTC" { "C" } else { "C.UTF-8" })
        .env("RUST_TEST_THREADS", if tz == "UTC" { "1" } else { "2" })
        .status()
        .unwrap();
    assert!(status.success());
    cwd.join("out/root.ext4")
}

#[test]
#[ignore = "helper run by two_builds_in_different_environments_are_identical"]
fn child_build() {
    let tar =
        PathBuf::from(std::env::var("ICOS_EXT4_CHILD_TAR").expect("run by the determinism test"));
    std::fs::create_dir_all("out").unwrap();
    build(&tar, Path::new("out/root.ext4"), &opts("repro"));
}

#[test]
fn two_builds_in_different_environments_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    write_tar(&tar, rich_rootfs());
    let (c1, c2) = (dir.path().join("one"), dir.path().join("two/deeper"));
    std::fs::create_dir_all(&c1).unwrap();
    std::fs::create_dir_all(&c2).unwrap();
    let a = build_in_child(&tar, &c1, "022", "UTC");
    let b = build_in_child(&tar, &c2, "077", "Pacific/Chatham");
    let (ha, hb) = (
        icos_common::sha256_file(&a).unwrap(),
        icos_common::sha256_file(&b).unwrap(),
    );
    assert_eq!(ha, hb, "builds differ");
    assert_fsck_clean(&a);
}

#[test]
fn lost_found_from_the_tar_long_names_and_explicit_inodes() {
    let dir = tempfile::tempdir().unwrap();
    let long_dir = format!("d-{}", "n".repeat(120));
    let long_file = format!("{long_dir}/f-{}", "m".repeat(200));
    let mut t = tar_bytes(vec![
        e("", Body::Dir),
        e(&long_dir, Body::Dir),
        e(&long_file, Body::File(b"pax path\n".to_vec())), // name > 100 bytes: PAX "path"
    ]);
    // Append a GNU long-name entry (type 'L' before the header) in place of the end marker, then
    // the rest in sorted order (the rootfs tar contract).
    t.truncate(t.len() - 1024);
    let mut gnu = tar::Builder::new(Vec::new());
    let gnu_name = format!("./{long_dir}/g-{}", "q".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o640);
    h.set_mtime(SDE);
    h.set_uid(0);
    h.set_gid(0);
    gnu.append_data(&mut h, &gnu_name, &b"gnu\n"[..]).unwrap();
    t.extend(gnu.into_inner().unwrap());
    t.truncate(t.len() - 1024);
    t.extend(tar_bytes(vec![
        e("lost+found", Body::Dir).mode(0o755).owner(1, 2),
        e("lost+found/kept", Body::File(b"kept\n".to_vec())),
    ]));
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, &t).unwrap();
    let img = dir.path().join("root.ext4");
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.inodes = Some(5000);
    let p = build(&tar, &img, &o);
    assert!(p.inodes_count >= 5000, "{p:?}");
    assert_fsck_clean(&img);
    let s = stat(&img, "/lost+found");
    assert!(
        s.starts_with("Inode: 11 ") && s.contains("Mode: 0755") && s.contains("User: 1 Group: 2"),
        "{s}"
    );
    assert_eq!(debugfs_cat(&img, "/lost+found/kept"), b"kept\n");
    assert_eq!(debugfs_cat(&img, &format!("/{long_file}")), b"pax path\n");
    assert_eq!(debugfs_cat(&img, &gnu_name[1..]), b"gnu\n");
    assert!(stat(&img, &gnu_name[1..]).contains("Mode: 0640"));
}

#[test]
fn xattr_values_with_newlines_and_equals_are_kept() {
    // Hand-made PAX records (framed by their length, not by newlines): a binary xattr value may
    // hold 0x0A and '=' bytes, and the records after it must still count.
    let dir = tempfile::tempdir().unwrap();
    let long_file = format!("./{}", "n".repeat(150));
    let records = [
        pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
        pax_record("SCHILY.xattr.user.z", b"\n"),
        pax_record("path", long_file.as_bytes()),
    ]
    .concat();
    let mut t = Vec::new();
    let mut root = raw_header(b"./", tar::EntryType::Directory, 0);
    root.set_mode(0o755);
    root.set_cksum();
    push_block(&mut t, &root, b"");
    push_block(
        &mut t,
        &raw_header(
            b"./@PaxHeader",
            tar::EntryType::XHeader,
            records.len() as u64,
        ),
        &records,
    );
    push_block(
        &mut t,
        &raw_header(b"./truncated", tar::EntryType::Regular, 3),
        b"nl\n",
    );
    t.extend_from_slice(&[0u8; 1024]);
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, &t).unwrap();
    let img = dir.path().join("root.ext4");
    build(&tar, &img, &opts("s"));
    assert_fsck_clean(&img);
    let path = &long_file[1..];
    assert_eq!(debugfs_cat(&img, path), b"nl\n");
    for (name, value) in [("user.nl", &b"a\nb=c"[..]), ("user.z", b"\n")] {
        let ea = run(
            "debugfs",
            &[
                "-R",
                &format!("ea_get -f /dev/stdout {path} {name}"),
                img.to_str().unwrap(),
            ],
        );
        assert!(
            ea.status.success(),
            "{}",
            String::from_utf8_lossy(&ea.stderr)
        );
        assert_eq!(ea.stdout, value, "{name}");
    }
}

/// A time before 1970 reads as 0, as icos-rootfs clamps it: the two tools agree on the same tar.
#[test]
fn times_before_1970_are_clamped_to_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mtime: Option<&str>| {
        if let Some(t) = mtime {
            b.append_pax_extensions([("mtime", t.as_bytes())]).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(SDE);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    };
    add("./", tar::EntryType::Directory, None);
    add("./old", tar::EntryType::Regular, Some("-86400.5"));
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    let img = dir.path().join("root.ext4");
    build(&tar, &img, &opts("s"));
    assert_fsck_clean(&img);
    let s = stat(&img, "/old");
    assert!(s.contains("mtime: 0x00000000:00000000"), "{s}");
}
