//! The fuzz harnesses: one function per parser of untrusted input, each taking the fuzzer's bytes.
//! AFL++ drives them from the binaries of `rs/fuzz` (a workspace of its own, for the instrumented
//! build); here, in the main workspace, `cargo test` replays every seed of `rs/fuzz/corpus` through
//! them, so each CI run checks the harnesses and the seeds without a second, instrumented compile.
//! A harness must never panic, hang or allocate without bound on any input; errors are the expected
//! outcome. Parsers that read files get the bytes through a private temporary directory.
//!
//! Documents that refer to each other by digest (OCI index → manifest → config) come as one input
//! split by [`SEP`]; in document `i`, `@D<j>` and `@S<j>` stand for the sha256 digest and the size
//! of document `j > i`, so the fuzzer reaches past the digest checks without inverting sha256.

use std::fs;
use std::io::{self, Cursor, Read};
use std::path::Path;

use icos_common::tarread::{pax_records, TarReader};
use icos_common::Digest;

/// Splits multi-document inputs.
pub const SEP: &[u8] = b"\n----\n";
/// The most a harness reads from a decompressing stream: bounded memory and time on bombs.
const STREAM_CAP: u64 = 16 << 20;

/// A harness: feeds one input to a parser; returns normally unless the parser misbehaves.
pub type Harness = fn(&[u8]);

/// Every harness, by target name (the binaries in src/bin, scripts/fuzz.sh and the seed replay).
pub const TARGETS: &[(&str, Harness)] = &[
    ("tar", tar),
    ("oci_layout", oci_layout),
    ("docker_archive", docker_archive),
    ("image_toml", image_toml),
    ("sha256sums", sha256sums),
    ("minisign", minisign),
    ("deb", deb),
    ("gpt", gpt),
    ("ext4", ext4),
];

fn tmpdir() -> tempfile::TempDir {
    // /dev/shm when there is one: the OCI and file harnesses write a few files per execution.
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("icos-fuzz.")
        .tempdir_in(if shm.is_dir() { shm } else { Path::new("/tmp") });
    builder.expect("a temporary directory")
}

fn split_docs(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut docs = Vec::new();
    let mut rest = data;
    while docs.len() + 1 < max {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                docs.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    docs.push(rest);
    docs
}

/// Resolves `@D<j>`/`@S<j>` placeholders, last document first; returns the final bytes.
fn link_docs(docs: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); docs.len()];
    for i in (0..docs.len()).rev() {
        let mut d = docs[i].to_vec();
        for (j, later) in out.iter().enumerate().skip(i + 1) {
            let digest = Digest::of(later).to_string();
            d = replace(&d, format!("@D{j}").as_bytes(), digest.as_bytes());
            d = replace(
                &d,
                format!("@S{j}").as_bytes(),
                later.len().to_string().as_bytes(),
            );
        }
        out[i] = d;
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn drain(r: impl Read) {
    let _ = io::copy(&mut r.take(STREAM_CAP), &mut io::sink());
}

fn read_tar(r: impl Read) {
    let mut t = TarReader::new(r);
    while let Ok(Some(e)) = t.next_entry() {
        let _ = (e.uid(), e.gid(), e.mtime(), e.xattrs().count());
        if e.typeflag == b'g' || e.typeflag == b'x' {
            if let Ok(v) = t.data_to_vec(1 << 20) {
                let _ = pax_records(&v);
            }
        } else {
            drain(t.data());
        }
    }
}

/// The shared tar/PAX reader, streaming and seekable.
pub fn tar(data: &[u8]) {
    read_tar(data);
    let mut t = TarReader::seekable(Cursor::new(data)).require_end_marker();
    let mut n = 0;
    while let Ok(Some(_)) = t.next_entry() {
        n += 1;
        if n % 2 == 0 {
            drain(t.data());
        }
    }
}

/// An OCI layout: document 0 is pinned; each document is stored as a blob under its digest.
pub fn oci_layout(data: &[u8]) {
    let docs = link_docs(&split_docs(data, 4));
    let dir = tmpdir();
    let blobs = dir.path().join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let pinned = Digest::of(&docs[0]);
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{pinned}","size":{}}}]}}"#,
        docs[0].len()
    );
    fs::write(dir.path().join("index.json"), index).unwrap();
    for d in &docs {
        fs::write(blobs.join(Digest::of(d).hex()), d).unwrap();
    }
    let _ = open_and_read(&format!("oci:{}@{pinned}", dir.path().display()));
}

/// A docker-save archive: document 0 is manifest.json, document `i` the member `doc<i>`; the pin is
/// the image ID of `doc1` (its config, when the manifest says so).
pub fn docker_archive(data: &[u8]) {
    let docs = link_docs(&split_docs(data, 4));
    let mut tar = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let name = if i == 0 {
            "manifest.json".to_string()
        } else {
            format!("doc{i}")
        };
        tar_member(&mut tar, &name, d);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let dir = tmpdir();
    let path = dir.path().join("image.tar");
    fs::write(&path, &tar).unwrap();
    let pinned = Digest::of(docs.get(1).map_or(&[][..], |d| &d[..]));
    let _ = open_and_read(&format!("docker-archive:{}@{pinned}", path.display()));
}

/// Opens the image and reads its layers; the number of layers (so tests can tell that a seed gets
/// past the digest checks), or the error.
fn open_and_read(reference: &str) -> Result<usize, String> {
    let base: icos_oci::BaseRef = reference.parse().map_err(|e| format!("{e}"))?;
    let image = icos_oci::Image::open(&base, &icos_oci::OpenOptions::default())
        .map_err(|e| e.to_string())?;
    for i in 0..image.layers().len() {
        if let Ok(r) = image.open_layer(i) {
            read_tar(r);
        }
    }
    Ok(image.layers().len())
}

/// A ustar member with a plain name (the harness's own framing, not under test).
fn tar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// image.toml, parsed from bytes.
pub fn image_toml(data: &[u8]) {
    let _ = icos_rootfs::ImageSpec::parse(Path::new("image.toml"), data, Vec::new());
}

/// SHA256SUMS: the signer's and icos-diff's parsers, and the release checker against a directory holding one file.
pub fn sha256sums(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = icos_sign::sums::parse_sums(text, Path::new("SHA256SUMS"));
        let _ = icos_diff::parse_sums(Path::new("SHA256SUMS"), text);
    }
    let dir = tmpdir();
    fs::write(dir.path().join("a.img"), b"a\n").unwrap();
    let sums = dir.path().join("SHA256SUMS");
    fs::write(&sums, data).unwrap();
    let _ = icos_release::sums::check_sums(&sums);
}

/// A project key that the signature part is checked against when the key part does not parse.
const FALLBACK_PUBLIC_KEY: &str = "untrusted comment: minisign public key A5946654306932FE\n\
RWT+MmkwVGaUpUmZC9pXLy9eu0aPnj/nJRjSjMT+SXlIRbFuIEWYQdSx\n";

/// Document 0 a minisign public key, 1 a signature, 2 the signed file (named `a.img`).
pub fn minisign(data: &[u8]) {
    let docs = split_docs(data, 3);
    let dir = tmpdir();
    let pk_path = dir.path().join("key.pub");
    fs::write(&pk_path, docs[0]).unwrap();
    let pk = match icos_sign::PublicKey::load(&pk_path) {
        Ok(pk) => pk,
        Err(_) => {
            fs::write(&pk_path, FALLBACK_PUBLIC_KEY).unwrap();
            match icos_sign::PublicKey::load(&pk_path) {
                Ok(pk) => pk,
                Err(_) => return,
            }
        }
    };
    let Some(sig) = docs.get(1).and_then(|s| std::str::from_utf8(s).ok()) else {
        return;
    };
    let file = docs.get(2).copied().unwrap_or(b"");
    let _ =
        icos_sign::minisig::verify_reader(&pk, sig, Cursor::new(file), "a.img", "a.img.minisig");
}

/// A .deb: the ar reader, the data.tar decompressor, and the tar inside.
pub fn deb(data: &[u8]) {
    let dir = tmpdir();
    let path = dir.path().join("p.deb");
    fs::write(&path, data).unwrap();
    if let Ok(r) = icos_deb::data_tar(&path) {
        read_tar(r.take(STREAM_CAP));
    }
}

/// The GPT reader of icos-diff, on a disk's first bytes.
pub fn gpt(data: &[u8]) {
    let _ = icos_diff::gpt::parse_gpt(data);
}

/// Blocks served from the input itself (zeros past its end), as a disk image would.
struct SliceBlocks<'a>(&'a [u8]);

impl icos_diff::ext4map::BlockSource for SliceBlocks<'_> {
    fn pass(
        &mut self,
        block_size: u64,
        wanted: &std::collections::BTreeSet<u64>,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), icos_diff::DiffError> {
        let mut buf = vec![0u8; block_size as usize];
        for &b in wanted {
            buf.fill(0);
            let start = b.saturating_mul(block_size);
            if let Ok(start) = usize::try_from(start) {
                if start < self.0.len() {
                    let end = self.0.len().min(start + buf.len());
                    buf[..end - start].copy_from_slice(&self.0[start..end]);
                }
            }
            visit(b, &buf);
        }
        Ok(())
    }
}

/// The ext4 readers of icos-diff: superblock, group tables, offset location and the block map.
pub fn ext4(data: &[u8]) {
    use icos_diff::ext4;
    if let Some(sb) = ext4::Superblock::parse(data) {
        let _ = (sb.groups(), sb.inode_table_blocks(), sb.group_tables(data));
    }
    for off in [0, 1024, 4096, data.len() as u64 / 2, u64::MAX / 2] {
        let _ = ext4::locate_span(data, off);
    }
    let _ = icos_diff::ext4map::Ext4Map::build(data, &mut SliceBlocks(data));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds AFL++ starts from, kept beside its targets.
    fn corpus() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
    }

    /// Every seed of every target runs through its harness without AFL.
    #[test]
    fn seeds_replay() {
        let root = corpus();
        for (name, run) in TARGETS {
            let dir = root.join(name);
            let mut n = 0;
            for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = e.unwrap().path();
                run(&fs::read(&path).unwrap());
                n += 1;
            }
            assert!(n > 0, "{name} has no seeds");
        }
    }

    /// The OCI seeds are valid images: the fuzzer starts past the digest and size checks.
    #[test]
    fn oci_seeds_open() {
        let root = corpus();
        for seed in [
            "oci_layout/manifest",
            "oci_layout/index",
            "docker_archive/legacy",
        ] {
            let data = fs::read(root.join(seed)).unwrap();
            let docs = link_docs(&split_docs(&data, 4));
            let dir = tmpdir();
            let reference = if seed.starts_with("oci") {
                let blobs = dir.path().join("blobs/sha256");
                fs::create_dir_all(&blobs).unwrap();
                for d in &docs {
                    fs::write(blobs.join(Digest::of(d).hex()), d).unwrap();
                }
                fs::write(
                    dir.path().join("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )
                .unwrap();
                fs::write(
                    dir.path().join("index.json"),
                    br#"{"schemaVersion":2,"manifests":[]}"#,
                )
                .unwrap();
                format!("oci:{}@{}", dir.path().display(), Digest::of(&docs[0]))
            } else {
                let mut tar = Vec::new();
                tar_member(&mut tar, "manifest.json", &docs[0]);
                tar_member(&mut tar, "doc1", &docs[1]);
                tar_member(&mut tar, "doc2", &docs[2]);
                tar.extend_from_slice(&[0u8; 1024]);
                fs::write(dir.path().join("i.tar"), tar).unwrap();
                format!(
                    "docker-archive:{}@{}",
                    dir.path().join("i.tar").display(),
                    Digest::of(&docs[1])
                )
            };
            assert_eq!(open_and_read(&reference), Ok(1), "{seed}");
        }
    }

    #[test]
    fn placeholders_link_documents() {
        let docs = link_docs(&split_docs(b"a @D1 @S1\n----\nxyz", 4));
        assert_eq!(docs[1], b"xyz");
        let want = format!("a {} 3", Digest::of(b"xyz"));
        assert_eq!(docs[0], want.as_bytes());
    }
}
