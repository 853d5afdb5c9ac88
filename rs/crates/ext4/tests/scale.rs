//! Many entries: `--size auto` grows the image until the inodes fit, and the directory link
//! count is exact up to EXT4_LINK_MAX (65000) and "1 = many" (dir_nlink) above it.
//!
//! The tars are built in memory, one header block per entry, and handed to the writer without a
//! copy on disk.

mod common;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use common::*;
use icos_common::SourceDateEpoch;
use icos_ext4::{write_image, Ext4Params, ImageSize, NoProgress, Options};
use tar::EntryType;

/// A rootfs tar of empty files and directories: `paths` without "./", directories ending in '/',
/// already in the contract's order (parents first, sorted).
fn bulk_tar<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut t = Vec::new();
    let mut push = |name: &str| {
        let kind = if name.ends_with('/') {
            EntryType::Directory
        } else {
            EntryType::Regular
        };
        let mut h = raw_header(name.as_bytes(), kind, 0);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_cksum();
        t.extend_from_slice(h.as_bytes());
    };
    push("./");
    for p in paths {
        push(&format!("./{p}"));
    }
    t.extend_from_slice(&[0u8; 1024]);
    t
}

fn build_bytes(tar: Vec<u8>, img: &Path, o: &Options) -> Ext4Params {
    let out = std::fs::File::create_new(img).unwrap();
    write_image(
        Cursor::new(tar),
        "bulk.tar",
        &out,
        &img.display().to_string(),
        o,
        &mut NoProgress,
    )
    .unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// `e2fsck -fn` only (the repairing second run of `assert_fsck_clean` doubles the time on these
/// large images without checking anything more).
fn fsck_n(img: &Path) {
    let out = run("e2fsck", &["-fn", img.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        let ok =
            line.starts_with("Pass ") || (line.contains(" files (") && line.ends_with(" blocks"));
        assert!(ok, "e2fsck -fn complained: {line:?}\n{stdout}");
    }
}

/// Mounts `img` read-only through a loop device and runs `f` on the mount point; returns false
/// (and runs nothing) where loop mounts are not permitted.
fn with_mount(img: &Path, f: impl FnOnce(&Path)) -> bool {
    let mnt = img.with_extension("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .arg("-o")
        .arg("loop,ro")
        .arg(img)
        .arg(&mnt)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED: mount -o loop,ro is not permitted here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return false;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount (package mount): {e}");
            return false;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    f(&mnt);
    true
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn auto_size_grows_for_33000_empty_files() {
    // A node_modules-like tree: no data at all, so the data alone would fit one block group,
    // whose inode table cannot hold 33,000 inodes (at most 32768 per group).
    let mut paths = Vec::new();
    for d in 0..33 {
        paths.push(format!("pkg{d:02}/"));
        for f in 0..1000 {
            paths.push(format!("pkg{d:02}/index-{f:04}.js"));
        }
    }
    let tar = bulk_tar(paths.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.ext4");
    let p = build_bytes(
        tar.clone(),
        &img,
        &Options::new("many", SourceDateEpoch(SDE)),
    );
    assert!(p.inodes_count >= 33_000 + 33 + 11, "{p:?}");

    // An explicit size with too few groups for the inodes says which size would do.
    let mut o = Options::new("many", SourceDateEpoch(SDE));
    o.size = ImageSize::Bytes(64 << 20);
    let out = std::fs::File::create_new(dir.path().join("small.ext4")).unwrap();
    let err = write_image(
        Cursor::new(tar),
        "bulk.tar",
        &out,
        "small.ext4",
        &o,
        &mut NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("image size 67108864 bytes is too small for the content of bulk.tar")
            && err.contains("it needs at least"),
        "{err}"
    );
    fsck_n(&img);
    with_mount(&img, |mnt| {
        let mut seen = 0;
        for d in 0..33 {
            let names = names_in(&mnt.join(format!("pkg{d:02}")));
            assert_eq!(names.len(), 1000);
            assert!(names.contains("index-0999.js"));
            seen += names.len();
        }
        assert_eq!(seen, 33_000);
    });
}

#[test]
fn auto_size_grows_for_a_100000_entry_directory() {
    let names: Vec<String> = (0..100_000).map(|i| format!("big/f{i:06}")).collect();
    let paths = std::iter::once("big/").chain(names.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.ext4");
    let mut o = Options::new("wide", SourceDateEpoch(SDE));
    o.size = ImageSize::Auto;
    let p = build_bytes(bulk_tar(paths), &img, &o);
    assert!(p.inodes_count >= 100_000 + 1 + 11, "{p:?}");
    fsck_n(&img);
    with_mount(&img, |mnt| {
        let got = names_in(&mnt.join("big"));
        assert_eq!(got.len(), 100_000);
        let want: BTreeSet<String> = (0..100_000).map(|i| format!("f{i:06}")).collect();
        assert!(got == want, "the kernel lists other names than the tar");
        assert_eq!(std::fs::metadata(mnt.join("big/f099999")).unwrap().len(), 0);
    });
}

/// One image holds both sides of the boundary: `at/` with 64,998 subdirectories (links
/// 2 + 64,998 = 65,000 = EXT4_LINK_MAX, stored as is) and `over/` with 64,999 (65,001: stored as
/// 1, "many", which dir_nlink allows).
#[test]
fn directory_link_count_at_and_over_ext4_link_max() {
    let mut paths = Vec::with_capacity(130_000);
    for (parent, n) in [("at", 64_998), ("over", 64_999)] {
        paths.push(format!("{parent}/"));
        for i in 0..n {
            paths.push(format!("{parent}/{i:05}/"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.ext4");
    build_bytes(
        bulk_tar(paths.iter().map(String::as_str)),
        &img,
        &Options::new("links", SourceDateEpoch(SDE)),
    );
    fsck_n(&img);
    let links = |path: &str| {
        let s = debugfs(&img, &format!("stat {path}"));
        s.split("Links: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("no link count in {s}"))
            .to_string()
    };
    assert_eq!(links("/at"), "65000");
    assert_eq!(links("/over"), "1");
    assert_eq!(links("/"), "5"); // ., .., lost+found, at, over
    with_mount(&img, |mnt| {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(mnt.join("at")).unwrap().nlink(), 65_000);
        assert_eq!(std::fs::metadata(mnt.join("over")).unwrap().nlink(), 1);
        assert_eq!(names_in(&mnt.join("over")).len(), 64_999);
    });
}
