//! Inodes and blocks of a real ext4 filesystem (made by mke2fs from a directory) are named by
//! their paths; debugfs, reading the same image, says which paths they are.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use icos_diff::{diff_dirs, Options};

/// `debugfs -R CMD IMAGE`'s standard output.
fn debugfs(image: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", cmd])
        .arg(image)
        .output()
        .expect("debugfs (Debian package e2fsprogs) is installed");
    assert!(out.status.success(), "debugfs {cmd}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn number_after(text: &str, key: &str) -> u64 {
    let rest = text
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("{key:?} in {text}"));
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == 'x')
        .collect();
    match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => digits.parse().unwrap(),
    }
}

/// A 2 MiB ext4 image (507 blocks) of a small tree: a file, a symbolic link too long to live in its inode,
/// a sparse file with eight extents (so an extent tree block), a directory of 300 files.
fn filesystem(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    for d in ["etc", "usr/bin", "var/lib"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    fs::write(tree.join("etc/motd"), "hello from icos\n").unwrap();
    std::os::unix::fs::symlink(
        format!("/usr/share/zoneinfo/{}", "x".repeat(90)),
        tree.join("etc/long-link"),
    )
    .unwrap();
    let big = fs::File::create(tree.join("usr/bin/big")).unwrap();
    for i in 0..8u64 {
        use std::os::unix::fs::FileExt;
        big.write_all_at(&[i as u8 + 1; 4096], i * 3 * 4096)
            .unwrap();
    }
    big.set_len(8 * 3 * 4096).unwrap();
    for i in 100..400 {
        fs::write(
            tree.join(format!("var/lib/a-long-file-name-{i}")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    let image = dir.join("fs.img");
    let size = (ROOT_END - ROOT_START) / 4096 * 4096;
    fs::File::create(&image)
        .unwrap()
        .set_len(size as u64)
        .unwrap();
    let st = Command::new("mke2fs")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-O",
            "^has_journal",
            "-N",
            "512",
            "-d",
        ])
        .arg(&tree)
        .arg(&image)
        .status()
        .expect("mke2fs (Debian package e2fsprogs) is installed");
    assert!(st.success());
    image
}

#[test]
fn inodes_and_blocks_of_a_real_ext4_are_named_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let image = filesystem(tmp.path());
    // What debugfs says about the image.
    let block = |path: &str, logical: u64| -> u64 {
        debugfs(&image, &format!("bmap {path} {logical}"))
            .trim()
            .parse()
            .unwrap()
    };
    let motd = block("/etc/motd", 0);
    let link = block("/etc/long-link", 0);
    let big = block("/usr/bin/big", 21); // reached through the extent tree block
    let tree_block = number_after(&debugfs(&image, "stat /usr/bin/big"), "(ETB0):");
    let dir = block("/var/lib", 1);
    let ino = number_after(
        &debugfs(&image, "stat /var/lib/a-long-file-name-250"),
        "Inode:",
    );
    let imap = debugfs(&image, &format!("imap <{ino}>"));
    let inode_at = number_after(&imap, "located at block") * 4096 + number_after(&imap, "offset");
    let free = number_after(&debugfs(&image, "ffb 1 400"), "Free blocks found:");
    assert!(
        debugfs(&image, &format!("icheck {free}")).contains("<block not found>"),
        "block {free} is free"
    );

    let img = fs::read(&image).unwrap();
    let a = Build::with_root_fs(&img);
    let mut b = a.clone();
    let flip = |b: &mut Build, at: u64| b.disk[ROOT_START + at as usize] ^= 0x20;
    flip(&mut b, motd * 4096 + 3);
    flip(&mut b, link * 4096 + 30);
    flip(&mut b, big * 4096 + 100);
    flip(&mut b, tree_block * 4096 + 2000); // past the extents: B's tree still maps the same
    flip(&mut b, inode_at + 0x10); // i_mtime
    flip(&mut b, free * 4096);
    // a byte of a name in /var/lib's second block (B's entry gets another name)
    let d = &img[(dir * 4096) as usize..((dir + 1) * 4096) as usize];
    let name_at = d
        .windows(16)
        .position(|w| w == b"a-long-file-name")
        .unwrap() as u64;
    flip(&mut b, dir * 4096 + name_at);

    let tmp2 = tempfile::tempdir().unwrap();
    let (pa, pb) = (tmp2.path().join("a"), tmp2.path().join("b"));
    a.write(&pa);
    b.write(&pb);
    let r = diff_dirs(&pa, &pb, &Options::default()).unwrap();
    let text = r.render_text();
    let expect = |block: u64, owner: &str| {
        format!("partition root: ext4 data block {block} ({owner}) differs (first at partition offset {}", block * 4096)
    };
    for line in [
        expect(motd, "/etc/motd: file data").replace(
            &format!("offset {}", motd * 4096),
            &format!("offset {},", motd * 4096 + 3),
        ),
        expect(link, "/etc/long-link: symbolic link target").replace(
            &format!("offset {}", link * 4096),
            &format!("offset {}", link * 4096 + 30),
        ),
        expect(big, "/usr/bin/big: file data").replace(
            &format!("offset {}", big * 4096),
            &format!("offset {}", big * 4096 + 100),
        ),
        expect(tree_block, "/usr/bin/big: extent tree").replace(
            &format!("offset {}", tree_block * 4096),
            &format!("offset {}", tree_block * 4096 + 2000),
        ),
        expect(dir, "/var/lib: directory entries").replace(
            &format!("offset {}", dir * 4096),
            &format!("offset {},", dir * 4096 + name_at),
        ),
        expect(free, "free space: no inode maps it") + ",",
        format!("partition root: ext4 inode {ino} (/var/lib/a-long-file-name-250): i_mtime differs (first at partition offset {},", inode_at + 0x10),
        format!("artifact update-img.tar.zst: member root.img (partition root): ext4 data block {motd} (/etc/motd: file data) differs"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "no line starting {line:?} in:\n{text}"
        );
    }
}

#[test]
fn blocks_of_a_file_that_only_b_has_are_named_from_b() {
    let tmp = tempfile::tempdir().unwrap();
    let image_a = filesystem(tmp.path());
    // B is A plus /etc/new, written by debugfs into blocks A leaves free
    let image_b = tmp.path().join("fs-b.img");
    fs::copy(&image_a, &image_b).unwrap();
    let src = tmp.path().join("new");
    fs::write(&src, [0x5a; 3 * 4096]).unwrap();
    let script = tmp.path().join("cmds");
    fs::write(&script, format!("cd /etc\nwrite {} new\n", src.display())).unwrap();
    let st = Command::new("debugfs")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&image_b)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let new: u64 = debugfs(&image_b, "bmap /etc/new 0").trim().parse().unwrap();
    assert!(
        debugfs(&image_a, &format!("icheck {new}")).contains("<block not found>"),
        "block {new} is free in A"
    );
    let a = Build::with_root_fs(&fs::read(&image_a).unwrap());
    let b = Build::with_root_fs(&fs::read(&image_b).unwrap());
    let (pa, pb) = (tmp.path().join("a"), tmp.path().join("b"));
    a.write(&pa);
    b.write(&pb);
    let text = diff_dirs(&pa, &pb, &Options::default())
        .unwrap()
        .render_text();
    let want = format!(
        "partition root: ext4 data blocks {new}-{} (3 blocks) (free space: no inode maps it; in B: /etc/new: file data) differ",
        new + 2
    );
    assert!(
        text.lines().any(|l| l.starts_with(&want)),
        "no line starting {want:?} in:\n{text}"
    );
}
