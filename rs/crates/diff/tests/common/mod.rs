//! Synthetic release directories: GPT disk images with a tiny ext4 head, packaged as real
//! zstd-compressed tars (PAX 1.0 sparse members written here, plus plain members), rootfs and
//! build manifests, SHA256SUMS.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;

use icos_common::Digest;
use serde_json::{json, Value};

pub const MIB: usize = 1 << 20;
pub const DISK_SIZE: usize = 4 * MIB;
pub const SECTOR: usize = 512;
pub const ESP_START: usize = MIB;
pub const ESP_END: usize = 2 * MIB;
pub const ROOT_START: usize = 2 * MIB;
/// Exclusive: the last usable LBA is 8158.
pub const ROOT_END: usize = 8159 * SECTOR;
pub const BACKUP_HEADER: usize = 8191 * SECTOR;
/// Partition offset of the byte where /etc/motd's data lives in the fake filesystem.
pub const MOTD_DATA: usize = 20 * 4096;

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}").into_bytes()
}

fn header(name: &str, size: u64, kind: tar::EntryType, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// Appends `data` as a PAX 1.0 sparse member: all-zero 4 KiB blocks become holes.
pub fn append_sparse<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8], mtime: u64) {
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    for (i, blk) in data.chunks(4096).enumerate() {
        if blk.iter().any(|&x| x != 0) {
            let off = i * 4096;
            match chunks.last_mut() {
                Some((o, l)) if *o + *l == off => *l += blk.len(),
                _ => chunks.push((off, blk.len())),
            }
        }
    }
    // GNU tar ends the map with a zero-length chunk at the end when the file ends in a hole
    if chunks.last().is_none_or(|(o, l)| o + l < data.len()) {
        chunks.push((data.len(), 0));
    }
    let mut map = format!("{}\n", chunks.len());
    for (o, l) in &chunks {
        map.push_str(&format!("{o}\n{l}\n"));
    }
    let mut body = map.into_bytes();
    body.resize(body.len().div_ceil(512) * 512, 0);
    for (o, l) in &chunks {
        body.extend_from_slice(&data[*o..o + l]);
    }
    let mut pax = Vec::new();
    for (k, v) in [
        ("GNU.sparse.major", "1".to_string()),
        ("GNU.sparse.minor", "0".to_string()),
        ("GNU.sparse.name", name.to_string()),
        ("GNU.sparse.realsize", data.len().to_string()),
    ] {
        pax.extend(pax_record(k, &v));
    }
    b.append(
        &header(
            &format!("./PaxHeaders/{name}"),
            pax.len() as u64,
            tar::EntryType::XHeader,
            mtime,
        ),
        &pax[..],
    )
    .unwrap();
    b.append(
        &header(
            &format!("./GNUSparseFile.0/{name}"),
            body.len() as u64,
            tar::EntryType::Regular,
            mtime,
        ),
        &body[..],
    )
    .unwrap();
}

pub fn append_plain<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8], mtime: u64) {
    b.append(
        &header(name, data.len() as u64, tar::EntryType::Regular, mtime),
        data,
    )
    .unwrap();
}

/// Writes a zstd-compressed tar of `members` (name, data, sparse?).
pub fn write_package(path: &Path, members: &[(&str, &[u8], bool)], mtime: u64) {
    let enc = zstd::stream::write::Encoder::new(fs::File::create(path).unwrap(), 3).unwrap();
    let mut b = tar::Builder::new(enc);
    for (name, data, sparse) in members {
        if *sparse {
            append_sparse(&mut b, name, data, mtime);
        } else {
            append_plain(&mut b, name, data, mtime);
        }
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn put(d: &mut [u8], at: usize, bytes: &[u8]) {
    d[at..at + bytes.len()].copy_from_slice(bytes);
}

/// GPT mixed-endian bytes of a textual GUID.
fn gpt_guid(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut u = [0u8; 16];
    for i in 0..16 {
        u[i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    u[0..4].reverse();
    u[4..6].reverse();
    u[6..8].reverse();
    u
}

/// The primary (or backup) GPT header and entries of the test disk.
fn write_gpt(d: &mut [u8], disk_guid: u8) {
    d[510] = 0x55;
    d[511] = 0xaa;
    for (hdr_lba, entries_lba, alt) in [(1usize, 2u64, 8191u64), (8191, 8159, 1)] {
        let h = hdr_lba * SECTOR;
        put(d, h, b"EFI PART");
        put(d, h + 8, &0x0001_0000u32.to_le_bytes());
        put(d, h + 12, &92u32.to_le_bytes());
        put(d, h + 24, &(hdr_lba as u64).to_le_bytes());
        put(d, h + 32, &alt.to_le_bytes());
        put(d, h + 40, &34u64.to_le_bytes());
        put(d, h + 48, &8158u64.to_le_bytes());
        put(d, h + 56, &[disk_guid; 16]);
        put(d, h + 72, &entries_lba.to_le_bytes());
        put(d, h + 80, &128u32.to_le_bytes());
        put(d, h + 84, &128u32.to_le_bytes());
        let e0 = entries_lba as usize * SECTOR;
        for (i, (name, ty, first, last)) in [
            (
                "esp",
                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                2048u64,
                4095u64,
            ),
            ("root", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", 4096, 8158),
        ]
        .into_iter()
        .enumerate()
        {
            let e = e0 + i * 128;
            put(d, e, &gpt_guid(ty));
            put(d, e + 16, &[i as u8 + 1; 16]);
            put(d, e + 32, &first.to_le_bytes());
            put(d, e + 40, &last.to_le_bytes());
            for (k, u) in name.encode_utf16().enumerate() {
                put(d, e + 56 + 2 * k, &u.to_le_bytes());
            }
        }
    }
}

/// A 1-group ext4 head (4 KiB blocks, 256-byte inodes, 128 inodes): GDT in block 1, block
/// bitmap 2, inode bitmap 3, inode table 4..12. Inode 2 is the root directory (entries in block
/// 21: `etc` = inode 13), inode 13 `/etc` (block 22: `motd` = inode 12), inode 12 `/etc/motd`,
/// whose data is block 20; all three map their blocks with one extent in the inode.
fn write_fs(fs: &mut [u8]) {
    let sb = 1024;
    put(fs, sb, &128u32.to_le_bytes());
    put(fs, sb + 0x04, &((fs.len() / 4096) as u32).to_le_bytes());
    put(fs, sb + 0x18, &2u32.to_le_bytes());
    put(fs, sb + 0x20, &32768u32.to_le_bytes());
    put(fs, sb + 0x28, &128u32.to_le_bytes());
    put(fs, sb + 0x2c, &1_700_000_000u32.to_le_bytes());
    put(fs, sb + 0x38, &0xef53u16.to_le_bytes());
    put(fs, sb + 0x4c, &1u32.to_le_bytes());
    put(fs, sb + 0x58, &256u16.to_le_bytes());
    put(fs, sb + 0x64, &1u32.to_le_bytes());
    put(fs, sb + 0x68, &[0x11; 16]);
    put(fs, 4096, &2u32.to_le_bytes());
    put(fs, 4096 + 4, &3u32.to_le_bytes());
    put(fs, 4096 + 8, &4u32.to_le_bytes());
    put(fs, 2 * 4096, &[0xff; 3]);
    put(fs, 3 * 4096, &[0xff; 2]);
    let inode = |n: usize| INODE_TABLE + (n - 1) * 256;
    for ino in 1..=12 {
        put(fs, inode(ino), &0o100644u16.to_le_bytes());
        put(fs, inode(ino) + 0x0c, &1_700_000_000u32.to_le_bytes());
    }
    // (inode, mode, links, data block)
    for (ino, mode, links, block) in [
        (2usize, 0o40755u16, 3u16, 21u32),
        (13, 0o40755, 2, 22),
        (12, 0o100644, 1, 20),
    ] {
        let at = inode(ino);
        put(fs, at, &mode.to_le_bytes());
        put(fs, at + 0x1a, &links.to_le_bytes());
        put(fs, at + 0x20, &0x80000u32.to_le_bytes()); // EXT4_EXTENTS_FL
                                                       // extent header (magic, 1 entry, max 4, depth 0), then one leaf: block 0, 1 block
        put(fs, at + 0x28, &[0x0a, 0xf3, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        put(fs, at + 0x34, &0u32.to_le_bytes());
        put(fs, at + 0x38, &1u16.to_le_bytes());
        put(fs, at + 0x3c, &block.to_le_bytes());
    }
    dir_block(&mut fs[21 * 4096..22 * 4096], 2, 2, &[("etc", 13)]);
    dir_block(&mut fs[22 * 4096..23 * 4096], 13, 2, &[("motd", 12)]);
    put(fs, MOTD_DATA, b"hello from icos\n");
}

/// Byte offset of the inode table in the fake filesystem.
pub const INODE_TABLE: usize = 4 * 4096;

/// A linear directory block: `.`, `..`, then `entries`, the last one spanning the block.
fn dir_block(b: &mut [u8], me: u32, parent: u32, entries: &[(&str, u32)]) {
    let mut all = vec![(".", me), ("..", parent)];
    all.extend_from_slice(entries);
    let mut off = 0;
    for (i, (name, ino)) in all.iter().enumerate() {
        let len = if i + 1 == all.len() {
            b.len() - off
        } else {
            (8 + name.len()).div_ceil(4) * 4
        };
        put(b, off, &ino.to_le_bytes());
        put(b, off + 4, &(len as u16).to_le_bytes());
        b[off + 6] = name.len() as u8;
        put(b, off + 8, name.as_bytes());
        off += len;
    }
}

/// One build: its disk bytes, rootfs entries and build-manifest knobs.
#[derive(Clone)]
pub struct Build {
    pub disk: Vec<u8>,
    pub entries: Vec<Value>,
    pub seed: String,
    /// Write `disk.partitions[].image_sha256` into the build manifest.
    pub partition_shas: bool,
    /// Write `disk.partitions[].image_size` into the build manifest.
    pub partition_image_sizes: bool,
    /// mtime of the tar members of the packages.
    pub package_mtime: u64,
}

pub fn motd_sha() -> String {
    Digest::of(b"hello from icos\n").to_string()
}

impl Build {
    pub fn new() -> Self {
        let mut disk = vec![0u8; DISK_SIZE];
        write_gpt(&mut disk, 0x42);
        put(&mut disk, ESP_START, b"\xeb\x58\x90mkfs.fat");
        put(&mut disk, ESP_START + 510, &[0x55, 0xaa]);
        write_fs(&mut disk[ROOT_START..ROOT_END]);
        let entries = vec![
            json!({"path": "/", "type": "dir", "mode": "0755", "uid": 0, "gid": 0, "mtime": 1700000000}),
            json!({"path": "/bin/sh", "type": "symlink", "mode": "0777", "uid": 0, "gid": 0, "mtime": 1700000000, "target": "busybox"}),
            json!({"path": "/etc", "type": "dir", "mode": "0755", "uid": 0, "gid": 0, "mtime": 1700000000}),
            json!({"path": "/etc/motd", "type": "file", "mode": "0644", "uid": 0, "gid": 0, "mtime": 1700000000, "size": 16, "sha256": motd_sha()}),
            json!({"path": "/usr/bin/ping", "type": "file", "mode": "0755", "uid": 0, "gid": 0, "mtime": 1700000000, "size": 0,
                   "sha256": Digest::of(b"").to_string(), "xattrs": {"security.capability": "0100000200200000000000000000000000000000"}}),
        ];
        Build {
            disk,
            entries,
            seed: "seed-1".into(),
            partition_shas: true,
            partition_image_sizes: true,
            package_mtime: 1_700_000_000,
        }
    }

    /// A build whose root partition holds `fs` (a filesystem image of at most the partition's
    /// size) instead of the fake filesystem.
    pub fn with_root_fs(fs: &[u8]) -> Self {
        let mut b = Build::new();
        assert!(
            fs.len() <= ROOT_END - ROOT_START,
            "the root partition holds 2080256 bytes"
        );
        b.disk[ROOT_START..ROOT_END].fill(0);
        b.disk[ROOT_START..ROOT_START + fs.len()].copy_from_slice(fs);
        b
    }

    pub fn entry_mut(&mut self, path: &str) -> &mut serde_json::Map<String, Value> {
        self.entries
            .iter_mut()
            .find(|e| e["path"] == path)
            .unwrap()
            .as_object_mut()
            .unwrap()
    }

    pub fn esp(&self) -> &[u8] {
        &self.disk[ESP_START..ESP_END]
    }

    pub fn root(&self) -> &[u8] {
        &self.disk[ROOT_START..ROOT_END]
    }

    /// Writes the release directory `dir` (created if needed).
    pub fn write(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        write_package(
            &dir.join("disk-img.tar.zst"),
            &[("disk.img", &self.disk, true)],
            self.package_mtime,
        );
        write_package(
            &dir.join("update-img.tar.zst"),
            &[
                ("boot.img", self.esp(), false),
                ("root.img", self.root(), true),
            ],
            self.package_mtime,
        );
        let rootfs = json!({
            "schema": "icos.rootfs-manifest/v1",
            "tool": {"name": "icos-rootfs", "version": "0.1.0"},
            "source_date_epoch": 1700000000,
            "entries": self.entries,
        });
        let rootfs_bytes = serde_json::to_string_pretty(&rootfs).unwrap();
        fs::write(dir.join("rootfs.manifest.json"), &rootfs_bytes).unwrap();
        let part = |name: &str, ty: &str, start: usize, end: usize, data: &[u8]| {
            let mut p = json!({"name": name, "type": ty, "first_lba": start / 512, "last_lba": end / 512 - 1,
                               "offset": start, "size": end - start});
            if self.partition_image_sizes {
                p["image_size"] = json!(data.len());
            }
            if self.partition_shas {
                p["image_sha256"] = json!(Digest::of(data).to_string());
            }
            p
        };
        let bm = json!({
            "schema": "icos.build-manifest/v1",
            "image": "default",
            "source_date_epoch": 1700000000,
            "seed": self.seed,
            "tools": [{"name": "icos-tools", "version": "0.1.0", "digest": Digest::of(b"tools").to_string()}],
            "inputs": [{"name": "base", "uri": "oci:base@sha256:00", "digest": Digest::of(b"base").to_string()},
                       {"name": "/etc/motd", "digest": Digest::of(b"motd").to_string()}],
            "rootfs": {"manifest_sha256": Digest::of(rootfs_bytes.as_bytes()).to_string(), "entries": self.entries.len()},
            "disk": {"sha256": Digest::of(&self.disk).to_string(), "size": self.disk.len(),
                     "partitions": [part("esp", "esp", ESP_START, ESP_END, self.esp()),
                                    part("root", "linux-root-x86-64", ROOT_START, ROOT_END, self.root())]},
            "future_field": {"ignored": true},
        });
        fs::write(
            dir.join("build-manifest.json"),
            serde_json::to_string_pretty(&bm).unwrap(),
        )
        .unwrap();
        write_sums(dir);
    }
}

/// (Re)writes `dir/SHA256SUMS` for every other top-level file.
pub fn write_sums(dir: &Path) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    names.sort();
    let mut text = String::new();
    for n in names {
        let (d, _) = icos_common::sha256_file(&dir.join(&n)).unwrap();
        text.push_str(&format!("{}  {n}\n", d.hex()));
    }
    fs::write(dir.join("SHA256SUMS"), text).unwrap();
}

/// Two release directories written side by side, A and B, removed when dropped.
pub struct Pair {
    _tmp: tempfile::TempDir,
    pub a: std::path::PathBuf,
    pub b: std::path::PathBuf,
}

pub fn pair(a: &Build, b: &Build) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let (pa, pb) = (tmp.path().join("a"), tmp.path().join("b"));
    a.write(&pa);
    b.write(&pb);
    Pair {
        _tmp: tmp,
        a: pa,
        b: pb,
    }
}

/// icos-diff's report on a pair, with default options.
pub fn diff(p: &Pair) -> icos_diff::Report {
    icos_diff::diff_dirs(&p.a, &p.b, &icos_diff::Options::default()).unwrap()
}

/// The report's text lines.
pub fn lines(r: &icos_diff::Report) -> Vec<String> {
    r.render_text().lines().map(str::to_string).collect()
}
