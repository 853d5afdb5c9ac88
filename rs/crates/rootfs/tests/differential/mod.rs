//! Shared by the randomized differential tests of the writers (`writers_ext4.rs`,
//! `writers_vfat.rs`): the input tree model, its layer tar, the run through icos-rootfs, the
//! case count and the stock tools.
//!
//! Case counts: `PROPTEST_CASES` (default [`DEFAULT_CASES`], bounded so that `cargo test` stays
//! within about a minute on two cores); `ICOS_DIFFERENTIAL_LONG=1` also enables the big shapes
//! (65,000-link groups, directories past the 64,998-subdirectory nlink limit, files of many
//! block groups). `scripts/fuzz.sh --differential SECONDS` sets both.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use icos_rootfs::{RootfsBuilder, RootfsError};
use proptest::test_runner::{Config, FileFailurePersistence};

pub const EPOCH: u64 = 1_700_000_000;
pub const DEFAULT_CASES: u32 = 24;

/// Whether the long mode's big shapes are on.
pub fn long_mode() -> bool {
    std::env::var_os("ICOS_DIFFERENTIAL_LONG").is_some_and(|v| v == "1")
}

/// The proptest configuration: `PROPTEST_CASES` or `default_cases`, failures kept in the
/// `.proptest-regressions` file next to the test source (committed: each seed is replayed first).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        // A failing case runs the whole pipeline again per shrink step: bound the search.
        max_shrink_iters: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Contents: `len` bytes of [`content`]`(seed, len, zero_block)`.
    File {
        len: usize,
        seed: u64,
        zero_block: bool,
    },
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// A hardlink to the node with this index (never a directory, never another hardlink).
    Hardlink(usize),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    /// Relative path, no `./` ("" is never stored: the root is implicit).
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Short enough to read in a failure report and in the regressions file (paths as text,
/// symlink targets and xattr values by length).
impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Symlink(t) => format!("Symlink({} bytes)", t.len()),
            k => format!("{k:?}"),
        };
        let xattrs: Vec<_> = self.xattrs.iter().map(|(k, v)| (k, v.len())).collect();
        write!(
            f,
            "{:?} {kind} mode {:o} ids {}:{} mtime {} xattrs {xattrs:?}",
            String::from_utf8_lossy(&self.path),
            self.mode,
            self.uid,
            self.gid,
            self.mtime
        )
    }
}

/// File contents: noise, with its second 4 KiB block all zeros when `zero_block` (the writers
/// keep zero blocks as holes; the bytes read back must not change).
pub fn content(seed: u64, len: usize, zero_block: bool) -> Vec<u8> {
    let mut v = icos_testsupport::noise(len, seed | 1);
    if zero_block && len > 4096 {
        let end = len.min(8192);
        v[4096..end].fill(0);
    }
    v
}

/// The tree's node a hardlink resolves to.
pub fn resolve(nodes: &[Node], i: usize) -> usize {
    match nodes[i].kind {
        Kind::Hardlink(t) => t,
        _ => i,
    }
}

/// The layer tar of `nodes`, in the given order (parents first), written with PAX records for
/// long names, long link targets and xattrs, as GNU tar --format=pax would.
pub fn layer_tar(nodes: &[Node]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut root = tar::Header::new_ustar();
    root.set_path("./").unwrap();
    root.set_entry_type(tar::EntryType::Directory);
    root.set_mode(0o755);
    root.set_mtime(EPOCH - 1);
    root.set_size(0);
    root.set_uid(0);
    root.set_gid(0);
    root.set_cksum();
    out.extend_from_slice(root.as_bytes());
    for n in nodes {
        let is_dir = n.kind == Kind::Dir;
        let mut name = [b"./".as_slice(), &n.path].concat();
        if is_dir {
            name.push(b'/');
        }
        let data = match &n.kind {
            Kind::File {
                len,
                seed,
                zero_block,
            } => content(*seed, *len, *zero_block),
            _ => Vec::new(),
        };
        let (typeflag, link): (u8, Option<Vec<u8>>) = match &n.kind {
            Kind::Dir => (b'5', None),
            Kind::File { .. } => (b'0', None),
            Kind::Symlink(t) => (b'2', Some(t.clone())),
            Kind::Char(..) => (b'3', None),
            Kind::Block(..) => (b'4', None),
            Kind::Fifo => (b'6', None),
            Kind::Hardlink(t) => (b'1', Some([b"./".as_slice(), &nodes[*t].path].concat())),
        };
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(icos_testsupport::pax_record("path", &name));
        }
        if let Some(l) = link.as_ref().filter(|l| l.len() > 100) {
            pax.extend(icos_testsupport::pax_record("linkpath", l));
        }
        for (k, v) in &n.xattrs {
            pax.extend(icos_testsupport::pax_record(
                &format!("SCHILY.xattr.{k}"),
                v,
            ));
        }
        if !pax.is_empty() {
            push(
                &mut out,
                b"./PaxHeaders/x",
                b'x',
                0o644,
                0,
                0,
                0,
                b"",
                &pax,
                (0, 0),
            );
        }
        let dev = match n.kind {
            Kind::Char(a, b) | Kind::Block(a, b) => (a, b),
            _ => (0, 0),
        };
        let short = |b: &[u8]| b[..b.len().min(100)].to_vec();
        push(
            &mut out,
            &short(&name),
            typeflag,
            n.mode,
            n.uid,
            n.gid,
            n.mtime,
            &link.as_deref().map(short).unwrap_or_default(),
            &data,
            dev,
        );
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Vec<u8>,
    name: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    link: &[u8],
    data: &[u8],
    (major, minor): (u32, u32),
) {
    let mut h = tar::Header::new_ustar();
    {
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name);
        u.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(tar::EntryType::new(typeflag));
    h.set_mode(mode);
    // Ids of 2^21 and more take GNU base-256 in the 8-byte field: the tar crate picks it.
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(mtime);
    h.set_size(data.len() as u64);
    h.set_device_major(major).unwrap();
    h.set_device_minor(minor).unwrap();
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Layer tar → icos-rootfs (the library the `icos-rootfs` tool runs) → `dir/rootfs.tar`.
pub fn flatten(dir: &Path, layer: &[u8]) -> Result<std::path::PathBuf, RootfsError> {
    let mut builder = RootfsBuilder::new(dir, EPOCH.to_string().parse().unwrap())?;
    builder.apply_layer("layer 1 of differential.tar", layer)?;
    let tar = dir.join("rootfs.tar");
    builder.write(&tar, &dir.join("rootfs.manifest.json"), None)?;
    Ok(tar)
}

/// Whether `program` runs; prints why the caller skips when it does not.
pub fn have_tool(program: &str, package: &str) -> bool {
    match Command::new(program).arg("--help").output() {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED: {program} cannot run ({e}): install it with `apt-get install {package}` (scripts/setup.sh does)"
            );
            false
        }
    }
}

/// Runs a stock tool with LC_ALL=C; (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn sha(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// The verdict on a build the generator also judged: `Ok(true)` when the writer built an image
/// that must now be checked, `Ok(false)` for an expected refusal that left no image behind, and
/// an error for a refusal of another kind, a leftover image or an accepted tree it must refuse.
pub fn verdict(built: Result<(), String>, expected: &[&str], img: &Path) -> Result<bool, String> {
    match built {
        Err(e) if expected.iter().any(|w| e.contains(w)) => {
            if img.exists() {
                Err(format!("refused ({e}) but left {}", img.display()))
            } else {
                Ok(false)
            }
        }
        Err(e) => Err(format!("refused, expected {expected:?}: {e}")),
        Ok(()) if !expected.is_empty() => {
            Err(format!("accepted a tree it must refuse: {expected:?}"))
        }
        Ok(()) => Ok(true),
    }
}
