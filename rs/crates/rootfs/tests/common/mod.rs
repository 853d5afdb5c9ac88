//! Test fixtures: layer tars built entry by entry with raw control over names (hostile ones
//! included), independent of the writer under test.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

use icos_common::mapped::MappedFile;
use icos_rootfs::{Manifest, RootfsBuilder, RootfsError};

pub const EPOCH: u64 = 1_700_000_000;

#[derive(Default)]
pub struct Layer {
    bytes: Vec<u8>,
}

pub struct E<'a> {
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: &'a [u8],
    pub data: &'a [u8],
    pub pax: Vec<(&'a str, Vec<u8>)>,
    pub major: u32,
    pub minor: u32,
}

impl<'a> E<'a> {
    pub fn new(name: &'a str, typeflag: u8) -> Self {
        E {
            name: name.as_bytes(),
            typeflag,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: b"",
            data: b"",
            pax: Vec::new(),
            major: 0,
            minor: 0,
        }
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer::default()
    }

    pub fn raw(&mut self, mut e: E<'_>) -> &mut Self {
        if e.name.len() > 100 {
            e.pax.push(("path", e.name.to_vec()));
            e.name = &e.name[..100];
        }
        if !e.pax.is_empty() {
            let mut records = Vec::new();
            for (k, v) in &e.pax {
                records.extend(icos_testsupport::pax_record(k, v));
            }
            self.header(
                b"PaxHeaders/x",
                b'x',
                0o644,
                0,
                0,
                0,
                b"",
                records.len() as u64,
                0,
                0,
            );
            self.data(&records);
        }
        self.header(
            e.name,
            e.typeflag,
            e.mode,
            e.uid,
            e.gid,
            e.mtime,
            e.link,
            e.data.len() as u64,
            e.major,
            e.minor,
        );
        self.data(e.data);
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        name: &[u8],
        typeflag: u8,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        link: &[u8],
        size: u64,
        major: u32,
        minor: u32,
    ) {
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().unwrap();
            u.name[..name.len()].copy_from_slice(name);
            u.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(size);
        h.set_entry_type(tar::EntryType::new(typeflag));
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.bytes.extend_from_slice(h.as_bytes());
    }

    fn data(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(E::new(name, b'5'))
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(E {
            data,
            ..E::new(name, b'0')
        })
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(E {
            link: target.as_bytes(),
            mode: 0o777,
            ..E::new(name, b'2')
        })
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(E {
            link: target.as_bytes(),
            ..E::new(name, b'1')
        })
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

/// How a test hands layers to the builder: as streams (compressed or remote layers are read so),
/// or mapped in place from a file (uncompressed local layers). Both must give the same result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAs {
    Stream,
    Mapped,
}

/// Applies `layer` the way `how` says; a mapped layer is written to a file in `dir` first, and
/// its verification always succeeds (the digest check is icos-oci's, tested there).
pub fn apply(
    builder: &mut RootfsBuilder,
    dir: &Path,
    name: &str,
    layer: &[u8],
    how: ReadAs,
) -> Result<(), RootfsError> {
    match how {
        ReadAs::Stream => builder.apply_layer(name, layer),
        ReadAs::Mapped => {
            let file = tempfile::tempfile_in(dir).unwrap();
            std::io::Write::write_all(&mut &file, layer).unwrap();
            let mapped = MappedFile::new(file).unwrap();
            let bytes = mapped.slice(0..layer.len() as u64).unwrap();
            builder.apply_mapped_layer(name, bytes, || Ok(()))
        }
    }
}

/// Flattens layers into a tar in memory, read both ways; the two results must be identical
/// (the same bytes and manifest, or the same error).
pub fn flatten(layers: &[Vec<u8>]) -> Result<(Vec<u8>, Manifest), RootfsError> {
    let streamed = flatten_as(layers, ReadAs::Stream);
    let mapped = flatten_as(layers, ReadAs::Mapped);
    match (&streamed, &mapped) {
        (Ok((a, ma)), Ok((b, mb))) => {
            assert!(a == b, "streamed and mapped layers gave different tars");
            assert_eq!(
                serde_json::to_value(ma).unwrap(),
                serde_json::to_value(mb).unwrap(),
                "streamed and mapped layers gave different manifests"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "different refusals"),
        _ => panic!(
            "streamed: {:?}; mapped: {:?}",
            streamed.as_ref().err(),
            mapped.as_ref().err()
        ),
    }
    streamed
}

pub fn flatten_as(layers: &[Vec<u8>], how: ReadAs) -> Result<(Vec<u8>, Manifest), RootfsError> {
    let spool = tempfile::tempdir().unwrap();
    let mut builder = RootfsBuilder::new(spool.path(), EPOCH.to_string().parse().unwrap())?;
    for (i, layer) in layers.iter().enumerate() {
        apply(
            &mut builder,
            spool.path(),
            &format!("layer {}", i + 1),
            layer,
            how,
        )?;
    }
    let mut out = Vec::new();
    let manifest = builder.write_to(&mut out, None).unwrap();
    Ok((out, manifest))
}

/// (name, typeflag, mode, uid, gid, mtime, link, data) of every member, read with the tar crate.
pub type Member = (String, char, u32, u64, u64, u64, String, Vec<u8>);

pub fn members(tar_bytes: &[u8]) -> Vec<Member> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap())
            .unwrap_or_default();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((
            name,
            h.entry_type().as_byte() as char,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            link,
            data,
        ));
    }
    out
}

pub fn names(tar_bytes: &[u8]) -> Vec<String> {
    members(tar_bytes).into_iter().map(|m| m.0).collect()
}

pub fn member<'a>(all: &'a [Member], name: &str) -> &'a Member {
    all.iter().find(|m| m.0 == name).unwrap_or_else(|| {
        panic!(
            "{name} not in {:?}",
            all.iter().map(|m| &m.0).collect::<Vec<_>>()
        )
    })
}

/// Lists the tar with GNU tar; fails with the package to install when it is missing.
pub fn gnu_tar_list(path: &Path) -> String {
    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(path)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("GNU tar is needed for this test: apt-get install tar");
    assert!(
        out.status.success(),
        "tar -tvf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "tar -tvf complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
