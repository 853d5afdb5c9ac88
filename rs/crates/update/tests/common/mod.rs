//! A real A/B disk image and real signed releases for the upgrade tests: GPT by icos-disk, an ESP
//! formatted by fatfs holding version 1's UKI, dm-verity trees by icos-verity, UKIs by icos-uki
//! from the pinned systemd stub, packages by icos-pack, manifests by `make_manifest`, signatures
//! by icos-sign with a throwaway key.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use icos_common::SourceDateEpoch;
use icos_node::disk::{by_name, Disk, PartRef};
use icos_sign::{keygen_with_limits, sign_file, KdfLimits, Protection, PublicKey, SigningKey};
use icos_update::{Running, UpdateManifest};
use icos_verity::RootHash;

pub const MIB: u64 = 1 << 20;

pub struct Release {
    pub dir: PathBuf,
    pub version: String,
    pub root_img: Vec<u8>,
    pub root_verity: Vec<u8>,
    pub uki: Vec<u8>,
    pub root_hash: RootHash,
    pub package: PathBuf,
    pub manifest: UpdateManifest,
    pub manifest_path: PathBuf,
}

impl Release {
    pub fn sig(&self) -> PathBuf {
        sig_of(&self.manifest_path)
    }
}

pub fn sig_of(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.minisig", p.display()))
}

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub public: PublicKey,
    pub other_key: SigningKey,
    pub stub: PathBuf,
}

/// The test fixture, or None (after saying why) when the pinned systemd stub is unavailable.
pub fn fixture() -> Option<Fx> {
    let stub = icos_testsupport::systemd_stub()?;
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str| {
        let (s, p) = (
            dir.path().join(format!("{name}.key")),
            dir.path().join(format!("{name}.pub")),
        );
        keygen_with_limits(
            &s,
            &p,
            &Protection::Unencrypted,
            false,
            KdfLimits::MINISIGN_DEFAULT,
        )
        .unwrap();
        (
            SigningKey::load(&s, None).unwrap(),
            PublicKey::load(&p).unwrap(),
        )
    };
    let (key, public) = mk("release");
    let (other_key, _) = mk("other");
    Some(Fx {
        dir,
        key,
        public,
        other_key,
        stub,
    })
}

/// 1 MiB of root data for `seed`, with zero blocks (so the package stores it sparse).
pub fn root_data(seed: u64) -> Vec<u8> {
    let mut d = icos_testsupport::noise(MIB as usize, seed);
    for b in [3usize, 4, 5, 100, 255] {
        d[b * 4096..(b + 1) * 4096].fill(0);
    }
    d
}

impl Fx {
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A signed release of `version` with root data `seed`, in its own directory.
    pub fn release(&self, version: &str, seed: u64) -> Release {
        let dir = self.path(&format!("release-{version}-{seed}"));
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root.img");
        fs::write(&root, root_data(seed)).unwrap();
        let verity = dir.join("root.verity");
        let params = icos_verity::build_hash_device(
            &root,
            &verity,
            "upgrade-test",
            "root",
            &mut icos_verity::NoProgress,
        )
        .unwrap();
        let params_path = dir.join("root.verity.json");
        fs::write(&params_path, serde_json::to_vec(&params).unwrap()).unwrap();
        let osrel = dir.join("os-release");
        fs::write(
            &osrel,
            format!("IMAGE_ID=\"icos\"\nIMAGE_VERSION=\"{version}\"\nNAME=\"icos\"\n"),
        )
        .unwrap();
        let (linux, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
        fs::write(&linux, icos_testsupport::fake_kernel(0x4001, seed)).unwrap();
        fs::write(&initrd, icos_testsupport::noise(5000, seed + 1)).unwrap();
        let uki = dir.join(format!("icos_{version}.efi"));
        icos_uki::write_uki(
            &icos_uki::UkiSpec {
                stub: self.stub.clone(),
                osrel,
                cmdline: format!("console=ttyS0 roothash={}", params.root_hash),
                uname: None,
                initrd,
                linux,
            },
            &uki,
        )
        .unwrap();
        let package = dir.join("update-img.tar.zst");
        pack(
            &package,
            &[
                (&uki, "uki.efi"),
                (&root, "root.img"),
                (&verity, "root.verity"),
            ],
        );
        let manifest =
            icos_update::make_manifest(&package, &uki, &params_path, "icos", version).unwrap();
        let manifest_path = dir.join("update-manifest.json");
        fs::write(&manifest_path, manifest.to_bytes()).unwrap();
        sign_file(&self.key, &manifest_path).unwrap();
        Release {
            dir,
            version: version.into(),
            root_img: fs::read(&root).unwrap(),
            root_verity: fs::read(&verity).unwrap(),
            uki: fs::read(&uki).unwrap(),
            root_hash: RootHash::from_hex(&params.root_hash).unwrap(),
            package,
            manifest,
            manifest_path,
        }
    }

    /// `m` written as `update-manifest.json` in a new directory `name`, signed with `key`.
    pub fn signed(&self, name: &str, m: &UpdateManifest, key: &SigningKey) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("update-manifest.json");
        fs::write(&p, m.to_bytes()).unwrap();
        sign_file(key, &p).unwrap();
        p
    }

    /// An A/B disk running `running` from slot A: esp (its UKI as icos_<version>.efi), root_a and
    /// root_a_verity written, root_b and root_b_verity zeros.
    pub fn disk(&self, name: &str, running: &Release) -> PathBuf {
        let dir = self.path(&format!("disk-{name}"));
        fs::create_dir_all(&dir).unwrap();
        let esp = dir.join("esp.img");
        {
            let mut f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&esp)
                .unwrap();
            f.set_len(8 * MIB).unwrap();
            fatfs::format_volume(&mut f, fatfs::FormatVolumeOptions::new()).unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
            let linux = fs
                .root_dir()
                .create_dir("EFI")
                .unwrap()
                .create_dir("Linux")
                .unwrap();
            let mut u = linux
                .create_file(&format!("icos_{}.efi", running.version))
                .unwrap();
            u.write_all(&running.uki).unwrap();
            drop(u);
            drop(linux);
            fs.unmount().unwrap();
        }
        fs::write(dir.join("root.img"), &running.root_img).unwrap();
        fs::write(dir.join("root.verity"), &running.root_verity).unwrap();
        let layout = dir.join("layout.toml");
        fs::write(
            &layout,
            "[[partition]]\nname = \"esp\"\ntype = \"esp\"\nsize = \"8MiB\"\nimage = \"esp.img\"\n\n\
             [[partition]]\nname = \"root_a\"\ntype = \"linux-root-x86-64\"\nsize = \"2MiB\"\nimage = \"root.img\"\n\n\
             [[partition]]\nname = \"root_a_verity\"\ntype = \"linux-root-verity-x86-64\"\nsize = \"1MiB\"\nimage = \"root.verity\"\n\n\
             [[partition]]\nname = \"root_b\"\ntype = \"linux-root-x86-64\"\nsize = \"2MiB\"\n\n\
             [[partition]]\nname = \"root_b_verity\"\ntype = \"linux-root-verity-x86-64\"\nsize = \"1MiB\"\n",
        )
        .unwrap();
        let out = dir.join("disk.img");
        icos_disk::build_disk(
            &layout,
            &out,
            &icos_disk::DiskOptions {
                seed: "upgrade-test".into(),
                images: Default::default(),
                disk_size: None,
            },
        )
        .unwrap();
        out
    }
}

pub fn pack(out: &Path, members: &[(&Path, &str)]) {
    let inputs: Vec<icos_release::pack::PackInput> = members
        .iter()
        .map(|(p, n)| icos_release::pack::PackInput {
            path: p.to_path_buf(),
            name: n.to_string(),
        })
        .collect();
    icos_release::pack::pack(
        &inputs,
        out,
        &icos_release::pack::PackOptions {
            source_date_epoch: SourceDateEpoch(1_700_000_000),
            threads: Some(1),
        },
    )
    .unwrap();
}

/// A package written by hand (plain ustar entries, zstd): for shapes icos-pack refuses to make.
pub fn raw_package(out: &Path, members: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    fs::write(out, zstd::encode_all(tar.as_slice(), 3).unwrap()).unwrap();
}

pub fn running(r: &Release) -> Running {
    Running {
        root_hash: r.root_hash,
        image_id: "icos".into(),
        version: r.version.clone(),
    }
}

pub fn part(disk: &Path, name: &str) -> PartRef {
    let parts = Disk::Image(disk.into()).partitions().unwrap();
    by_name(&parts, name).unwrap().clone()
}

/// The bytes of partition `name`.
pub fn read_part(disk: &Path, name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    part(disk, name)
        .open_read()
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// The file names in the ESP's /EFI/Linux.
pub fn entries(disk: &Path) -> Vec<String> {
    icos_update::esp::Esp::open(&part(disk, "esp"), false)
        .unwrap()
        .entries()
        .unwrap()
}

/// The bytes of /EFI/Linux/<name>.
pub fn esp_file(disk: &Path, name: &str) -> Vec<u8> {
    let mut w = part(disk, "esp").open_read().unwrap();
    let fs = fatfs::FileSystem::new(&mut w, fatfs::FsOptions::new()).unwrap();
    let mut v = Vec::new();
    fs.root_dir()
        .open_file(&format!("EFI/Linux/{name}"))
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}
