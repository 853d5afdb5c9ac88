//! Identical xattr sets that need a block share it (h_refcount), as the kernel does, at most
//! 1024 inodes per block (EXT4_XATTR_REFCOUNT_MAX).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use icos_common::SourceDateEpoch;
use icos_ext4::{build_image, NoProgress, Options};

/// An SELinux label plus a value too large for the inode body: every labelled file needs a block.
fn label() -> Vec<u8> {
    b"system_u:object_r:usr_t:s0\0".to_vec()
}

fn big(seed: u64) -> Vec<u8> {
    data(seed, 600)
}

const SHARED: usize = 1030; // more than one block's 1024 users

fn tree() -> Vec<E> {
    let mut v = vec![e("", Body::Dir), e("lib", Body::Dir), e("etc", Body::Dir)];
    for i in 0..SHARED {
        v.push(
            e(
                &format!("lib/f{i:04}"),
                Body::File(format!("{i}\n").into_bytes()),
            )
            .xattr("security.selinux", &label())
            .xattr("user.big", &big(1)),
        );
    }
    // A different value: its own block. The same value under another name: another block.
    v.push(
        e("etc/other", Body::File(b"o".to_vec()))
            .xattr("security.selinux", &label())
            .xattr("user.big", &big(2)),
    );
    v.push(e("etc/renamed", Body::File(b"r".to_vec())).xattr("user.large", &big(1)));
    // A hardlink is the same inode: no extra reference.
    v.push(e("lib/zlink", Body::Link("lib/f0000".into())));
    v
}

/// (path, "File ACL" block) of every regular file, from one debugfs run.
fn acl_blocks(img: &Path, paths: &[String]) -> BTreeMap<String, u64> {
    let script = img.with_extension("debugfs");
    let cmds: String = paths.iter().map(|p| format!("stat /{p}\n")).collect();
    std::fs::write(&script, cmds).unwrap();
    let out = run(
        "debugfs",
        &["-f", script.to_str().unwrap(), img.to_str().unwrap()],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let blocks: Vec<u64> = text
        .split("File ACL: ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(blocks.len(), paths.len(), "{text}");
    paths.iter().cloned().zip(blocks).collect()
}

fn free_blocks(img: &Path) -> u64 {
    let out = run("dumpe2fs", &["-h", img.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Free blocks:"))
        .unwrap_or_else(|| panic!("no free block count in {text}"))
        .trim()
        .parse()
        .unwrap()
}

fn opts() -> Options {
    let mut o = Options::new("xattr-share", SourceDateEpoch(SDE));
    o.size = icos_ext4::ImageSize::Bytes(64 << 20);
    o
}

#[test]
fn identical_xattr_blocks_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    write_tar(&tar, tree());
    let img = dir.path().join("root.ext4");
    build_image(&tar, &img, &opts(), &mut NoProgress).unwrap();
    assert_fsck_clean(&img);

    let mut paths: Vec<String> = (0..SHARED).map(|i| format!("lib/f{i:04}")).collect();
    paths.extend(["etc/other", "etc/renamed", "lib/zlink"].map(String::from));
    let acl = acl_blocks(&img, &paths);
    let shared_first = acl["lib/f0000"];
    let shared_last = acl[&format!("lib/f{:04}", SHARED - 1)];
    assert_ne!(shared_first, 0);
    assert_ne!(
        shared_last, shared_first,
        "a block holds at most 1024 users"
    );
    for i in 0..SHARED {
        let want = if i < 1024 { shared_first } else { shared_last };
        assert_eq!(acl[&format!("lib/f{i:04}")], want, "lib/f{i:04}");
    }
    assert_eq!(acl["lib/zlink"], shared_first);
    let distinct: std::collections::BTreeSet<u64> = acl.values().copied().collect();
    assert_eq!(distinct.len(), 4, "{acl:?}");

    // The blocks on disk: h_refcount counts the inodes (the hardlink is one of them).
    let bytes = std::fs::read(&img).unwrap();
    let refcount = |blk: u64| {
        let at = (blk * 4096) as usize;
        assert_eq!(&bytes[at..at + 4], &0xEA02_0000u32.to_le_bytes());
        u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap())
    };
    assert_eq!(refcount(shared_first), 1024);
    assert_eq!(refcount(shared_last), (SHARED - 1024) as u32);
    assert_eq!(refcount(acl["etc/other"]), 1);
    assert_eq!(refcount(acl["etc/renamed"]), 1);

    // The same tree without xattrs uses exactly 4 blocks fewer (dumpe2fs counts, not our params).
    let plain: Vec<E> = tree()
        .into_iter()
        .map(|mut en| {
            en.xattrs.clear();
            en
        })
        .collect();
    let plain_tar = dir.path().join("plain.tar");
    write_tar(&plain_tar, plain);
    let plain_img = dir.path().join("plain.ext4");
    build_image(&plain_tar, &plain_img, &opts(), &mut NoProgress).unwrap();
    assert_eq!(free_blocks(&plain_img) - free_blocks(&img), 4);

    // debugfs and the kernel read every file's attributes back.
    let ea = debugfs(&img, &format!("ea_get /lib/f{:04} user.big", SHARED - 1));
    assert!(!ea.is_empty());
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(&img)
        .arg(&mnt)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED the kernel check: mount -o loop,ro is not permitted here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    for i in (0..SHARED).step_by(97).chain([1023, 1024, SHARED - 1]) {
        let p = mnt.join(format!("lib/f{i:04}"));
        assert_eq!(
            getxattr(&p, "user.big").as_deref(),
            Some(&big(1)[..]),
            "{p:?}"
        );
        assert_eq!(
            getxattr(&p, "security.selinux").as_deref(),
            Some(&label()[..])
        );
    }
    assert_eq!(
        getxattr(&mnt.join("etc/other"), "user.big").as_deref(),
        Some(&big(2)[..])
    );
    assert_eq!(
        getxattr(&mnt.join("etc/renamed"), "user.large").as_deref(),
        Some(&big(1)[..])
    );
    assert_eq!(getxattr(&mnt.join("etc/renamed"), "user.big"), None);
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid NUL-terminated strings and a buffer of the length passed.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}
