//! Our hash devices against the stock tool: `veritysetup verify` accepts them, and
//! `veritysetup format` with the same salt and UUID writes the same bytes and root hash.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use icos_common::seed::{format_uuid, verity_salt, verity_uuid};
use icos_common::SourceDateEpoch;
use icos_testsupport::{noise, push_ustar, run_checker};
use icos_verity::{
    build_hash_device, compute_root_hash, format, root_hash_of_hash_device, verify, verify_files,
    NoProgress, RootHash, Superblock, VerityParams, PARAMS_SCHEMA,
};

const SEED: &str = "verity-test-seed";
const VERITYSETUP: &str = "/usr/sbin/veritysetup";
const PACKAGE: &str = "cryptsetup-bin";

fn veritysetup(args: &[&str]) -> (bool, String) {
    run_checker(Command::new(VERITYSETUP).args(args), PACKAGE)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Builds our hash device for `data`, then checks it with veritysetup both ways.
fn check_against_veritysetup(dir: &Path, data: &Path, label: &str) -> VerityParams {
    let ours = dir.join(format!("{label}.verity"));
    let params = build_hash_device(data, &ours, SEED, label, &mut NoProgress).unwrap();
    let size = fs::metadata(data).unwrap().len();
    assert_eq!(params.schema, PARAMS_SCHEMA);
    assert_eq!(params.data_blocks * 4096, size);
    assert_eq!(params.data_size, size);
    assert_eq!(params.hash_start_block, 1);
    assert_eq!(params.salt, hex(&verity_salt(SEED, label)));
    assert_eq!(params.uuid, format_uuid(&verity_uuid(SEED, label)));
    assert_eq!(fs::metadata(&ours).unwrap().len(), params.hash_size);

    let (ok, out) = veritysetup(&["verify", path_str(data), path_str(&ours), &params.root_hash]);
    assert!(ok, "veritysetup verify refused our hash device:\n{out}");

    let theirs = dir.join(format!("{label}.veritysetup"));
    let salt_arg = format!("--salt={}", params.salt);
    let uuid_arg = format!("--uuid={}", params.uuid);
    let (ok, out) = veritysetup(&[
        "format",
        &salt_arg,
        &uuid_arg,
        "--hash=sha256",
        "--format=1",
        "--data-block-size=4096",
        "--hash-block-size=4096",
        path_str(data),
        path_str(&theirs),
    ]);
    assert!(ok, "veritysetup format failed:\n{out}");
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap_or_else(|| panic!("no root hash in veritysetup's output:\n{out}"))
        .trim();
    assert_eq!(
        printed, params.root_hash,
        "root hash differs from veritysetup's"
    );
    let (a, b) = (fs::read(&ours).unwrap(), fs::read(&theirs).unwrap());
    assert_eq!(a.len(), b.len(), "hash device sizes differ");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "hash device differs from veritysetup's at byte {i} (block {}), data {}",
            i / 4096,
            data.display()
        );
    }

    // The reader agrees with the writer on everything.
    let root = RootHash::from_hex(&params.root_hash).unwrap();
    let sb = Superblock::read_from(&mut fs::File::open(&ours).unwrap()).unwrap();
    assert_eq!(sb.data_blocks(), params.data_blocks);
    assert_eq!(hex(sb.salt()), params.salt);
    assert_eq!(sb.uuid_string(), params.uuid);
    assert_eq!(
        compute_root_hash(fs::File::open(data).unwrap(), &sb).unwrap(),
        root
    );
    if sb.geometry().levels().is_empty() {
        assert!(root_hash_of_hash_device(fs::File::open(&ours).unwrap(), &sb).is_err());
    } else {
        assert_eq!(
            root_hash_of_hash_device(fs::File::open(&ours).unwrap(), &sb).unwrap(),
            root
        );
    }
    verify_files(data, &ours, &root, &mut NoProgress).unwrap();
    params
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn noise_file(dir: &Path, blocks: usize, seed: u64) -> PathBuf {
    let p = dir.join(format!("data-{blocks}.img"));
    fs::write(&p, noise(blocks * 4096, seed)).unwrap();
    p
}

#[test]
fn veritysetup_agrees_one_block() {
    // No tree at all: the root hash is the data block's digest, the hash device its superblock.
    let dir = tempfile::tempdir().unwrap();
    let data = noise_file(dir.path(), 1, 1);
    let p = check_against_veritysetup(dir.path(), &data, "one");
    assert_eq!(p.hash_size, 4096);
}

#[test]
fn veritysetup_agrees_around_one_full_hash_block() {
    let dir = tempfile::tempdir().unwrap();
    for (blocks, hash_size) in [(127, 2 * 4096), (128, 2 * 4096), (129, 4 * 4096)] {
        let data = noise_file(dir.path(), blocks, blocks as u64);
        let p = check_against_veritysetup(dir.path(), &data, &format!("root-{blocks}"));
        assert_eq!(p.hash_size, hash_size, "{blocks} blocks");
    }
}

#[test]
fn veritysetup_agrees_three_levels() {
    // 128*128+1 blocks: level 0 has 129 blocks, level 1 two, level 2 one.
    let dir = tempfile::tempdir().unwrap();
    let data = noise_file(dir.path(), 128 * 128 + 1, 7);
    let p = check_against_veritysetup(dir.path(), &data, "root");
    assert_eq!(p.hash_size, (1 + 129 + 2 + 1) * 4096);
}

#[test]
fn veritysetup_agrees_on_zero_data() {
    // All-zero blocks hash like any other (no sparse shortcut); 300 blocks, two levels.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("zeros.img");
    fs::write(&data, vec![0u8; 300 * 4096]).unwrap();
    check_against_veritysetup(dir.path(), &data, "zeros");
}

#[test]
fn veritysetup_agrees_on_an_icos_ext4_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    use tar::EntryType::{Directory, Regular};
    push_ustar(&mut tar, "./", Directory, 0o755, 1_700_000_000, b"");
    push_ustar(&mut tar, "./etc/", Directory, 0o755, 1_700_000_000, b"");
    push_ustar(
        &mut tar,
        "./etc/hostname",
        Regular,
        0o644,
        1_700_000_000,
        b"icos\n",
    );
    push_ustar(&mut tar, "./usr/", Directory, 0o755, 1_700_000_000, b"");
    let big = noise(3 << 20, 42);
    push_ustar(&mut tar, "./usr/blob", Regular, 0o644, 1_700_000_000, &big);
    tar.extend_from_slice(&[0; 1024]);
    let tar_path = dir.path().join("rootfs.tar");
    fs::write(&tar_path, tar).unwrap();
    let ext4 = dir.path().join("root.ext4");
    let opts = icos_ext4::Options::new(SEED, SourceDateEpoch(1_700_000_000));
    icos_ext4::build_image(&tar_path, &ext4, &opts, &mut icos_ext4::NoProgress).unwrap();
    check_against_veritysetup(dir.path(), &ext4, "root");
}

#[test]
fn reader_level_api_matches_files() {
    // format/verify on in-memory readers and writers give what the file functions give.
    let dir = tempfile::tempdir().unwrap();
    let blocks = 1000;
    let data = noise_file(dir.path(), blocks, 99);
    let on_disk = dir.path().join("root.verity");
    let params = build_hash_device(&data, &on_disk, SEED, "root", &mut NoProgress).unwrap();

    let bytes = fs::read(&data).unwrap();
    let sb = Superblock::from_seed(SEED, "root", blocks as u64).unwrap();
    let mut out = Cursor::new(Vec::new());
    let root = format(&bytes[..], &mut out, &sb).unwrap();
    assert_eq!(root.to_hex(), params.root_hash);
    assert_eq!(out.get_ref(), &fs::read(&on_disk).unwrap());
    verify(Cursor::new(&bytes), Cursor::new(out.get_ref()), &root).unwrap();

    // A data device larger than the tree (a partition rounded up) still verifies.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xee; 8192]);
    verify(Cursor::new(&longer), Cursor::new(out.get_ref()), &root).unwrap();
}

#[test]
fn params_json_keys_are_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise_file(dir.path(), 3, 3);
    let p = build_hash_device(&data, &dir.path().join("h"), SEED, "root", &mut NoProgress).unwrap();
    let json = serde_json::to_string_pretty(&p).unwrap();
    let keys: Vec<&str> = json
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 12, "{json}");
    let back: VerityParams = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}
