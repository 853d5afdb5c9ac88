//! Test helpers: rootfs tars built per the contract (sorted, ./ names, PAX only where needed)
//! and the e2fsprogs checkers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tar::{EntryType, Header};

#[allow(unused_imports)] // not every test binary builds PAX records
pub use icos_testsupport::pax_record;

pub const SDE: u64 = 1_700_000_000;

#[derive(Clone)]
pub enum Body {
    Dir,
    File(Vec<u8>),
    /// Hardlink to this path (without "./").
    Link(String),
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Clone)]
pub struct E {
    /// Relative path without "./" ("" is the root).
    pub path: String,
    pub body: Body,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub fn e(path: &str, body: Body) -> E {
    let mode = match body {
        Body::Dir => 0o755,
        Body::Symlink(_) => 0o777,
        _ => 0o644,
    };
    E {
        path: path.into(),
        body,
        mode,
        uid: 0,
        gid: 0,
        mtime: SDE - 1000,
        xattrs: Vec::new(),
    }
}

impl E {
    pub fn mode(mut self, m: u32) -> E {
        self.mode = m;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, t: u64) -> E {
        self.mtime = t;
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> E {
        self.xattrs.push((k.into(), v.to_vec()));
        self
    }
    pub fn name(&self) -> String {
        match (&self.body, self.path.as_str()) {
            (_, "") => "./".into(),
            (Body::Dir, p) => format!("./{p}/"),
            (_, p) => format!("./{p}"),
        }
    }
}

/// Deterministic non-trivial bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A raw ustar header with `name` put in verbatim (no validation, so tests can be hostile).
pub fn raw_header(name: &[u8], etype: EntryType, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(etype);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(SDE);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// Sorts per the contract and writes the tar into a byte vector.
pub fn tar_bytes(mut entries: Vec<E>) -> Vec<u8> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut b = tar::Builder::new(Vec::new());
    for en in &entries {
        let name = en.name();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut h = Header::new_ustar();
        if name.len() <= 100 {
            h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        } else {
            pax.push(("path".into(), name.clone().into_bytes()));
        }
        let (etype, payload): (EntryType, &[u8]) = match &en.body {
            Body::Dir => (EntryType::Directory, b""),
            Body::File(d) => (EntryType::Regular, d),
            Body::Link(_) => (EntryType::Link, b""),
            Body::Symlink(_) => (EntryType::Symlink, b""),
            Body::Char(..) => (EntryType::Char, b""),
            Body::Block(..) => (EntryType::Block, b""),
            Body::Fifo => (EntryType::Fifo, b""),
        };
        h.set_entry_type(etype);
        h.set_size(payload.len() as u64);
        h.set_mode(en.mode);
        h.set_mtime(en.mtime);
        for (key, id, set) in [
            ("uid", en.uid, Header::set_uid as fn(&mut Header, u64)),
            ("gid", en.gid, Header::set_gid),
        ] {
            if id >= 1 << 21 {
                pax.push((key.into(), id.to_string().into_bytes()));
                set(&mut h, 0);
            } else {
                set(&mut h, id);
            }
        }
        let link = match &en.body {
            Body::Link(t) => Some(format!("./{t}")),
            Body::Symlink(t) => Some(t.clone()),
            _ => None,
        };
        if let Some(l) = link {
            if l.len() <= 100 {
                h.set_link_name_literal(l.as_bytes()).unwrap();
            } else {
                pax.push(("linkpath".into(), l.into_bytes()));
            }
        }
        if let Body::Char(ma, mi) | Body::Block(ma, mi) = en.body {
            h.set_device_major(ma).unwrap();
            h.set_device_minor(mi).unwrap();
        }
        for (k, v) in &en.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        pax.sort();
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        h.set_cksum();
        b.append(&h, payload).unwrap();
    }
    b.into_inner().unwrap()
}

/// Appends a header block and its data, padded to 512 bytes.
pub fn push_block(tar: &mut Vec<u8>, h: &Header, data: &[u8]) {
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

pub fn write_tar(path: &Path, entries: Vec<E>) {
    std::fs::write(path, tar_bytes(entries)).unwrap();
}

/// A program from e2fsprogs, or a failure that says what to install.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: apt-get install -y e2fsprogs");
}

pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(tool(name))
        .args(args)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// `e2fsck -fn` must exit 0 and print nothing but its five passes and the summary.
pub fn assert_fsck_clean(img: &Path) {
    let out = run("e2fsck", &["-fn", img.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn failed:\n{stdout}\n{stderr}"
    );
    for line in stdout.lines() {
        let ok =
            line.starts_with("Pass ") || (line.contains(" files (") && line.ends_with(" blocks"));
        assert!(ok, "e2fsck -fn complained: {line:?}\n{stdout}");
    }
    // A repairing run must find nothing to change either (exit 0, not 1 "modified").
    let copy = img.with_extension("fsck-copy");
    std::fs::copy(img, &copy).unwrap();
    let out = run("e2fsck", &["-fy", copy.to_str().unwrap()]);
    let _ = std::fs::remove_file(&copy);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fy changed something:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Output of one debugfs request, whitespace-normalized.
pub fn debugfs(img: &Path, request: &str) -> String {
    let out = run("debugfs", &["-R", request, img.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "debugfs -R {request:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Raw bytes of `debugfs -R 'cat PATH'`.
pub fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = run(
        "debugfs",
        &["-R", &format!("cat {path}"), img.to_str().unwrap()],
    );
    assert!(out.status.success());
    out.stdout
}

pub fn sha(b: &[u8]) -> String {
    icos_common::Digest::of(b).to_string()
}
