//! The Linux kernel reads the image: mounted read-only through a loop device (root only).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;
use icos_common::SourceDateEpoch;
use icos_ext4::{build_image, NoProgress, Options};

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn kernel_mounts_the_image_read_only_and_sees_the_tar() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("rootfs.tar");
    let big = data(11, 3 << 20);
    let xattr_big = data(12, 2000);
    let cap = [
        1u8, 0, 0, 2, 0x0a, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    write_tar(
        &tar,
        vec![
            e("", Body::Dir),
            e("bin", Body::Dir),
            e("bin/ping", Body::File(b"ping".to_vec()))
                .mode(0o4755)
                .xattr("security.capability", &cap),
            e("bin/sh", Body::Symlink("busybox".into())),
            e("bin/long", Body::Symlink("x/".repeat(100))),
            e("dev", Body::Dir),
            e("dev/null", Body::Char(1, 3)).mode(0o666),
            e("dev/nvme", Body::Block(259, 70000))
                .mode(0o660)
                .owner(0, 6),
            e("dev/fifo", Body::Fifo),
            e("etc", Body::Dir),
            e("etc/big", Body::File(big.clone()))
                .owner(70000, 3_000_000)
                .xattr("user.big", &xattr_big),
            e("etc/hard", Body::Link("etc/big".into())),
            e("tmp", Body::Dir).mode(0o1777),
        ],
    );
    let img = dir.path().join("root.ext4");
    let mut o = Options::new("mount", SourceDateEpoch(SDE));
    o.blocks_per_group = 1024;
    build_image(&tar, &img, &o, &mut NoProgress).unwrap();

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .arg("-o")
        .arg("loop,ro")
        .arg(&img)
        .arg(&mnt)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED: mount -o loop,ro is not permitted here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount (package mount): {e}");
            return;
        }
    }
    let _guard = Unmount(&mnt);

    let m = std::fs::metadata(mnt.join("etc/big")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.nlink(), m.len()),
        (70000, 3_000_000, 0o644, 2, big.len() as u64)
    );
    assert_eq!(m.mtime(), SDE as i64 - 1000);
    assert_eq!(
        m.ino(),
        std::fs::metadata(mnt.join("etc/hard")).unwrap().ino()
    );
    assert_eq!(sha(&std::fs::read(mnt.join("etc/big")).unwrap()), sha(&big));
    assert_eq!(
        std::fs::metadata(mnt.join("bin/ping")).unwrap().mode(),
        0o104755
    );
    assert_eq!(
        std::fs::read_link(mnt.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::read_link(mnt.join("bin/long")).unwrap(),
        Path::new(&"x/".repeat(100))
    );
    let null = std::fs::symlink_metadata(mnt.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), (1 << 8) | 3);
    let nvme = std::fs::symlink_metadata(mnt.join("dev/nvme")).unwrap();
    assert!(nvme.file_type().is_block_device());
    // glibc's makedev(259, 70000)
    let (ma, mi) = (259u64, 70000u64);
    assert_eq!(
        nvme.rdev(),
        ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
    );
    assert!(std::fs::symlink_metadata(mnt.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(std::fs::metadata(mnt.join("tmp")).unwrap().mode(), 0o41777);
    assert_eq!(std::fs::metadata(&mnt).unwrap().nlink(), 2 + 4 + 1);

    // Xattrs through the kernel: one in a block, one (with a 0x0a byte) in the inode.
    assert_eq!(
        getxattr(&mnt.join("etc/big"), "user.big").as_deref(),
        Some(&xattr_big[..])
    );
    assert_eq!(
        getxattr(&mnt.join("etc/hard"), "user.big").as_deref(),
        Some(&xattr_big[..])
    );
    assert_eq!(
        getxattr(&mnt.join("bin/ping"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    assert_eq!(getxattr(&mnt.join("bin/ping"), "user.none"), None);
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
