//! The package reader against archives written by GNU tar (PAX 1.0 and 0.1 sparse, plain), and
//! the ext4 locator against a filesystem written by mke2fs.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use icos_diff::package::{Package, Piece};
use icos_testsupport::{pax_record, push_ustar};

/// A sparse file: data at 0, a hole, data at 1 MiB + 100 (unaligned), a hole to the end.
fn sparse_file(path: &Path) -> Vec<u8> {
    let size = 3 << 20;
    let mut f = fs::File::create(path).unwrap();
    let mut want = vec![0u8; size];
    let first: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    f.write_all(&first).unwrap();
    want[..first.len()].copy_from_slice(&first);
    f.seek(SeekFrom::Start((1 << 20) + 100)).unwrap();
    f.write_all(b"middle").unwrap();
    want[(1 << 20) + 100..(1 << 20) + 106].copy_from_slice(b"middle");
    f.set_len(size as u64).unwrap();
    want
}

/// Reads every member back: (name, content, bytes reported as holes).
fn read_all(path: &Path) -> Vec<(String, Vec<u8>, u64)> {
    let mut pkg = Package::open(path).unwrap();
    let mut members = pkg.members().unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Some(mut m) = members.next_member().unwrap() {
        let mut data = Vec::new();
        let mut holes = 0;
        loop {
            match m.next_piece(&mut buf).unwrap() {
                Piece::Data(n) => data.extend_from_slice(&buf[..n]),
                Piece::Zeros(n) => {
                    holes += n;
                    data.resize(data.len() + n as usize, 0)
                }
                Piece::End => break,
            }
        }
        assert_eq!(data.len() as u64, m.size());
        out.push((m.name().to_string(), data, holes));
    }
    out
}

fn gnu_tar(dir: &Path, out: &Path, version: &str) {
    let st = Command::new("tar")
        .current_dir(dir)
        .args([
            "--format=pax",
            "--sparse",
            &format!("--sparse-version={version}"),
            "-cf",
        ])
        .arg(out)
        .args(["disk.img", "plain.txt"])
        .status()
        .expect("GNU tar runs");
    assert!(st.success());
}

#[test]
fn reads_gnu_tar_pax_sparse_members_compressed_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let want = sparse_file(&tmp.path().join("disk.img"));
    fs::write(tmp.path().join("plain.txt"), b"plain member\n").unwrap();
    for version in ["1.0", "0.1"] {
        let tar_path = tmp.path().join(format!("v{version}.tar"));
        gnu_tar(tmp.path(), &tar_path, version);
        let zst = tmp.path().join(format!("v{version}.tar.zst"));
        let raw = fs::read(&tar_path).unwrap();
        fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
        for p in [&tar_path, &zst] {
            let got = read_all(p);
            assert_eq!(got.len(), 2, "{version}");
            assert_eq!(
                got[0].0, "disk.img",
                "{version}: GNU.sparse.name is the member name"
            );
            assert!(got[0].1 == want, "{version}: sparse content differs");
            assert!(
                got[0].2 >= 2 << 20,
                "{version}: holes are reported as holes ({} bytes)",
                got[0].2
            );
            assert_eq!(
                (got[1].0.as_str(), &got[1].1[..], got[1].2),
                ("plain.txt", &b"plain member\n"[..], 0)
            );
        }
    }
}

#[test]
fn our_fixture_writer_agrees_with_gnu_tar() {
    // the test helper that builds the synthetic release dirs must write what GNU tar reads back
    let tmp = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; 1 << 20];
    data[5000] = 1;
    data[700_000..700_100].fill(7);
    let tar_path = tmp.path().join("t.tar");
    let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    common::append_sparse(&mut b, "disk.img", &data, 0);
    b.into_inner().unwrap();
    let out = tmp.path().join("x");
    fs::create_dir(&out).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap()
        .success());
    assert!(fs::read(out.join("disk.img")).unwrap() == data);
    assert!(read_all(&tar_path)[0].1 == data);
}

#[test]
fn malformed_sparse_maps_are_errors_naming_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.tar");
    let mut b = tar::Builder::new(Vec::new());
    common::append_sparse(&mut b, "disk.img", &[1u8; 8192], 0);
    let mut raw = b.into_inner().unwrap();
    // the map starts in the data block after the PAX header block, its data and the ustar header
    let map_at = raw
        .windows(5)
        .position(|w| w == b"1\n0\n8")
        .expect("map text");
    raw[map_at + 4] = b'9'; // the chunk now claims 9192 bytes
    fs::write(&p, &raw).unwrap();
    let mut pkg = Package::open(&p).unwrap();
    let e = pkg
        .members()
        .unwrap()
        .next_member()
        .err()
        .expect("rejected")
        .to_string();
    assert!(e.contains("bad.tar") && e.contains("disk.img"), "{e}");
}

#[test]
fn ext4_locator_matches_a_real_mke2fs_filesystem() {
    let Ok(st) = Command::new("mke2fs").arg("-V").output() else {
        panic!("mke2fs (e2fsprogs) is needed for this test");
    };
    assert!(st.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    let st = Command::new("mke2fs")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", "2048", "-g", "8192",
        ])
        .args(["-E", "lazy_itable_init=0,root_owner=0:0"])
        .arg(&img)
        .arg("128M")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let data = fs::read(&img).unwrap();
    // dumpe2fs tells where group 1's structures are; the locator must agree
    let dump = Command::new("dumpe2fs").arg(&img).output().unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    let group1 = text.split("Group 1:").nth(1).expect("group 1");
    let num_after = |key: &str| -> u64 {
        let s = group1
            .split(key)
            .nth(1)
            .unwrap_or_else(|| panic!("{key} in {group1}"));
        s.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (bbitmap, ibitmap, itable) = (
        num_after("Block bitmap at "),
        num_after("Inode bitmap at "),
        num_after("Inode table at "),
    );
    let ipg: u64 = text
        .lines()
        .find(|l| l.starts_with("Inodes per group:"))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let head = &data[..1 << 20];
    let loc = |o: u64| icos_diff::ext4::locate(head, o).unwrap();
    assert_eq!(
        loc(bbitmap * 4096 + 1).description,
        "block bitmap of group 1"
    );
    assert_eq!(loc(ibitmap * 4096).description, "inode bitmap of group 1");
    let l = loc(itable * 4096 + 3 * 256 + 0x10);
    assert_eq!(
        (l.inode, l.field.as_deref()),
        (Some(ipg + 4), Some("i_mtime"))
    );
    // group 1 holds a backup superblock (sparse_super) at its first block
    let bpg: u64 = text
        .lines()
        .find(|l| l.starts_with("Blocks per group:"))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        loc(bpg * 4096 + 0x68).description,
        "backup superblock in group 1 (s_uuid)"
    );
    assert_eq!(loc(0x400 + 0x68).description, "superblock (s_uuid)");
    assert_eq!(
        loc((bpg + 1) * 4096 + 64 + 0x1e).description,
        "backup group descriptor of group 1 (bg_checksum)"
    );
    assert_eq!(
        loc(4096 + 2 * 64 + 0x08).description,
        "group descriptor of group 2 (bg_inode_table_lo)"
    );
    assert_eq!(loc(10 * 4096).description, "reserved GDT blocks of group 0");
    // the root directory is inode 2; its i_ctime is what a fresh copy of a tree changes
    assert_eq!(
        loc(first_itable(&text) * 4096 + 256 + 0x0c).description,
        "inode table of group 0, inode 2 (i_ctime)"
    );
    // with flex_bg, group 1's inode table lives in group 0: the inode number still follows group 1
    assert!(
        itable < bpg,
        "flex_bg packs group 1's table into group 0 ({itable})"
    );
}

fn first_itable(dump: &str) -> u64 {
    let g0 = dump.split("Group 0:").nth(1).unwrap();
    let s = g0.split("Inode table at ").nth(1).unwrap();
    s.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn reads_old_gnu_sparse_members_with_extension_headers() {
    // `--format=gnu --sparse` writes type 'S' members; ten data regions need an extension block
    // after the header (which holds four).
    let tmp = tempfile::tempdir().unwrap();
    let size = 4 << 20;
    let mut want = vec![0u8; size];
    let mut f = fs::File::create(tmp.path().join("disk.img")).unwrap();
    for i in 0..10 {
        let at = i * 400_000 + 123;
        want[at..at + 5000].fill(i as u8 + 1);
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&want[at..at + 5000]).unwrap();
    }
    f.set_len(size as u64).unwrap();
    drop(f);
    fs::write(tmp.path().join("plain.txt"), b"plain member\n").unwrap();
    let tar_path = tmp.path().join("gnu.tar");
    let st = Command::new("tar")
        .current_dir(tmp.path())
        .args(["--format=gnu", "--sparse", "-cf"])
        .arg(&tar_path)
        .args(["disk.img", "plain.txt"])
        .status()
        .expect("GNU tar runs");
    assert!(st.success());
    let raw = fs::read(&tar_path).unwrap();
    assert_eq!(raw[156], b'S', "GNU tar wrote an old-style sparse member");
    assert_eq!(raw[482], 1, "with an extension block");
    let got = read_all(&tar_path);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "disk.img");
    assert!(got[0].1 == want, "sparse content differs");
    assert!(got[0].2 >= 3 << 20, "holes are reported as holes");
    assert_eq!(got[1].1, b"plain member\n");
}

#[test]
fn pax_values_with_newlines_do_not_stop_the_reader() {
    // A rootfs-like tar: an xattr value with 0x0A and '=' bytes, then a long name's path record.
    let tmp = tempfile::tempdir().unwrap();
    let long = format!("./etc/{}", "n".repeat(120));
    let records = [
        pax_record("SCHILY.xattr.user.nl", b"a\nb=c"),
        pax_record("path", long.as_bytes()),
    ]
    .concat();
    let mut t = Vec::new();
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8]| {
        push_ustar(&mut t, name, kind, 0o644, 0, data)
    };
    add("./", tar::EntryType::Directory, b"");
    add("./@PaxHeader", tar::EntryType::XHeader, &records);
    add("./etc/truncated", tar::EntryType::Regular, b"content\n");
    add("./etc/motd", tar::EntryType::Regular, b"motd\n");
    t.extend_from_slice(&[0u8; 1024]);
    for (name, bytes) in [
        ("rootfs.tar", t.clone()),
        ("rootfs.tar.zst", zstd::encode_all(&t[..], 3).unwrap()),
    ] {
        let p = tmp.path().join(name);
        fs::write(&p, bytes).unwrap();
        let got = read_all(&p);
        assert_eq!(got.len(), 2, "{name}");
        assert_eq!(
            (got[0].0.as_str(), &got[0].1[..]),
            (&long[2..], &b"content\n"[..])
        );
        assert_eq!(
            (got[1].0.as_str(), &got[1].1[..]),
            ("etc/motd", &b"motd\n"[..])
        );
    }
}
