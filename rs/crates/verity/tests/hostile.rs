//! Untrusted hash devices: hostile superblocks are refused with their reason, and every damaged
//! block is named by `verify`.

use std::fs;
use std::io::Cursor;
use std::process::Command;

use icos_testsupport::{noise, run_checker};
use icos_verity::{
    compute_root_hash, format, root_hash_of_hash_device, verify, verify_files, Corruption, Error,
    NoProgress, RootHash, Superblock, SuperblockError,
};

/// Data and our hash device over `blocks` noise blocks.
fn built(blocks: u64) -> (Vec<u8>, Vec<u8>, Superblock, RootHash) {
    let data = noise(blocks as usize * 4096, blocks ^ 0x5eed);
    let sb = Superblock::from_seed("hostile", "root", blocks).unwrap();
    let mut hash = Cursor::new(Vec::new());
    let root = format(&data[..], &mut hash, &sb).unwrap();
    (data, hash.into_inner(), sb, root)
}

fn read_sb(hash: &[u8]) -> Result<Superblock, Error> {
    Superblock::read_from(&mut Cursor::new(hash))
}

fn expect_sb_error(hash: &[u8], want: SuperblockError, text: &str) {
    match read_sb(hash) {
        Err(Error::Superblock { device, source }) => {
            assert_eq!(source, want);
            assert_eq!(device, "hash device");
            let msg = Error::Superblock { device, source }.to_string();
            assert!(msg.contains(text), "message {msg:?} lacks {text:?}");
        }
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

fn patched(hash: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut h = hash.to_vec();
    h[at..at + bytes.len()].copy_from_slice(bytes);
    h
}

#[test]
fn hostile_superblocks_are_refused_with_their_reason() {
    let (_, hash, _, _) = built(300);
    assert!(read_sb(&hash).is_ok());
    let cases: Vec<(Vec<u8>, SuperblockError, &str)> = vec![
        (
            patched(&hash, 0, b"VERITY"),
            SuperblockError::Magic {
                found: "VERITY\\x00\\x00".into(),
            },
            "no dm-verity superblock: the magic is VERITY\\x00\\x00",
        ),
        (
            patched(&hash, 8, &2u32.to_le_bytes()),
            SuperblockError::Version(2),
            "superblock version 2 is not supported (only 1)",
        ),
        (
            patched(&hash, 12, &0u32.to_le_bytes()),
            SuperblockError::HashType(0),
            "hash type 0 is not supported",
        ),
        (
            patched(&hash, 32, b"sha1\0\0"),
            SuperblockError::Algorithm("sha1".into()),
            "hash algorithm \"sha1\" is not supported (only \"sha256\")",
        ),
        (
            patched(&hash, 32, &[b'x'; 32]),
            SuperblockError::Algorithm("x".repeat(32)),
            "is not supported (only \"sha256\")",
        ),
        (
            patched(&hash, 32, b"sha256\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0X"),
            SuperblockError::NonZero {
                field: "the algorithm field after \"sha256\"",
                start: 38,
                end: 64,
            },
            "must be zero and is not",
        ),
        (
            patched(&hash, 64, &512u32.to_le_bytes()),
            SuperblockError::DataBlockSize(512),
            "data block size 512 is not supported (only 4096)",
        ),
        (
            patched(&hash, 68, &1024u32.to_le_bytes()),
            SuperblockError::HashBlockSize(1024),
            "hash block size 1024 is not supported (only 4096)",
        ),
        (
            patched(&hash, 80, &300u16.to_le_bytes()),
            SuperblockError::SaltSize(300),
            "salt size 300 exceeds the maximum of 256 bytes",
        ),
        (
            patched(&hash, 72, &0u64.to_le_bytes()),
            SuperblockError::NoDataBlocks,
            "data_blocks is 0",
        ),
        (
            patched(&hash, 72, &u64::MAX.to_le_bytes()),
            SuperblockError::TooManyDataBlocks(u64::MAX),
            "would not fit in 2^64 bytes",
        ),
        (
            // 385 data blocks need 4 level-0 hash blocks; the device holds 3.
            patched(&hash, 72, &385u64.to_le_bytes()),
            SuperblockError::HashDeviceTooSmall {
                data_blocks: 385,
                needed: 6 * 4096,
                size: 5 * 4096,
            },
            "the hash device has 20480 bytes but the tree for 385 data blocks needs 24576",
        ),
        (
            patched(&hash, 72, &(1u64 << 40).to_le_bytes()),
            SuperblockError::HashDeviceTooSmall {
                data_blocks: 1 << 40,
                needed: Superblock::new([0; 16], &[], 1 << 40)
                    .unwrap()
                    .geometry()
                    .hash_device_size(),
                size: 5 * 4096,
            },
            "it is truncated or belongs to a larger image",
        ),
        (
            patched(&hash, 84, &[1]),
            SuperblockError::NonZero {
                field: "_pad1",
                start: 82,
                end: 88,
            },
            "_pad1 (bytes 82..88) must be zero and is not",
        ),
        (
            // A byte after the 32 salt bytes inside the salt field.
            patched(&hash, 88 + 32, &[1]),
            SuperblockError::NonZero {
                field: "the salt field after salt_size bytes",
                start: 120,
                end: 344,
            },
            "must be zero",
        ),
        (
            patched(&hash, 511, &[1]),
            SuperblockError::NonZero {
                field: "_pad2",
                start: 344,
                end: 512,
            },
            "_pad2 (bytes 344..512) must be zero and is not",
        ),
        (
            hash[..100].to_vec(),
            SuperblockError::Truncated { len: 100 },
            "truncated: 100 bytes, a dm-verity superblock has 512",
        ),
        (
            Vec::new(),
            SuperblockError::Truncated { len: 0 },
            "truncated: 0 bytes",
        ),
        (
            // The tree cut short: the superblock is intact, the last level-0 block is missing.
            hash[..hash.len() - 4096].to_vec(),
            SuperblockError::HashDeviceTooSmall {
                data_blocks: 300,
                needed: 5 * 4096,
                size: 4 * 4096,
            },
            "the hash device has 16384 bytes but the tree for 300 data blocks needs 20480: it is truncated",
        ),
    ];
    // Sanity: the fixture's geometry is what the cases assume.
    assert_eq!(hash.len(), 5 * 4096);
    for (bytes, want, text) in cases {
        expect_sb_error(&bytes, want, text);
    }
}

#[test]
fn verify_refuses_a_data_device_smaller_than_the_tree() {
    let (data, hash, _, root) = built(300);
    let e = verify(Cursor::new(&data[..299 * 4096]), Cursor::new(&hash), &root).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::DataTooSmall {
                data_blocks: 300,
                needed: 1_228_800,
                size: 1_224_704,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "data device has 1224704 bytes, but the superblock of hash device covers 300 data blocks \
         (1228800 bytes): the data is truncated or the hash device belongs to a larger image"
    );
    let sb = read_sb(&hash).unwrap();
    assert_eq!(
        sb.check_data_size(299 * 4096).unwrap_err().to_string(),
        "data_blocks is 300 (1228800 bytes) but the data device has only 1224704 bytes"
    );
    assert!(sb.check_data_size(300 * 4096).is_ok());
    // compute_root_hash has no size to check up front: it stops where the data ends.
    let e = compute_root_hash(&data[..1000], &sb).unwrap_err();
    assert_eq!(
        e.to_string(),
        "data device ends after 1000 bytes, but the hash tree covers 1228800 bytes"
    );
}

#[test]
fn verify_files_names_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (data, hash, _, root) = built(300);
    let d = dir.path().join("root.ext4");
    let h = dir.path().join("root.verity");
    fs::write(&d, &data).unwrap();
    fs::write(&h, patched(&hash, 8, &7u32.to_le_bytes())).unwrap();
    let e = verify_files(&d, &h, &root, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: invalid dm-verity superblock: superblock version 7 is not supported (only 1)",
            h.display()
        )
    );
    let missing = dir.path().join("missing");
    let e = verify_files(&d, &missing, &root, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
}

/// Verifies and returns the corruption found (and how many mismatches besides it).
fn corruption(data: &[u8], hash: &[u8], root: &RootHash) -> (Corruption, u64, String) {
    match verify(Cursor::new(data), Cursor::new(hash), root) {
        Err(e @ Error::Corrupt { .. }) => {
            let msg = e.to_string();
            let Error::Corrupt { first, more, .. } = e else {
                unreachable!()
            };
            (*first, more, msg)
        }
        other => panic!("expected a corruption, got {other:?}"),
    }
}

#[test]
fn tampering_is_found_and_named() {
    // Three levels: level 0 = hash blocks 4..=132 (129 blocks), level 1 = blocks 2..=3, top = 1.
    let blocks = 128 * 128 + 1;
    let (data, hash, sb, root) = built(blocks);
    let levels = sb.geometry().levels().to_vec();
    assert_eq!(
        levels
            .iter()
            .map(|l| (l.first_block, l.blocks))
            .collect::<Vec<_>>(),
        [(4, 129), (2, 2), (1, 1)]
    );
    verify(Cursor::new(&data), Cursor::new(&hash), &root).unwrap();
    assert_eq!(
        root_hash_of_hash_device(Cursor::new(&hash), &sb).unwrap(),
        root
    );

    // One flipped byte in data block 5000.
    let mut bad = data.clone();
    bad[5000 * 4096 + 17] ^= 0x01;
    let (c, more, msg) = corruption(&bad, &hash, &root);
    assert_eq!(
        c,
        Corruption::DataBlock {
            index: 5000,
            hash_block: 4 + 5000 / 128
        }
    );
    assert_eq!(more, 0);
    assert_eq!(
        msg,
        "data device and hash device do not verify: data block 5000 (bytes 20480000..20484096 of \
         the data device) does not match its digest in hash block 43 (level 0)"
    );

    // The last data block (alone in the last level-0 hash block).
    let mut bad = data.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    let (c, _, _) = corruption(&bad, &hash, &root);
    assert_eq!(
        c,
        Corruption::DataBlock {
            index: blocks - 1,
            hash_block: 132
        }
    );

    // One flipped byte in a digest of level-0 hash block 10 (hash device block 14): the data
    // block it covers mismatches too, but the damaged hash block is what is named.
    let mut bad = hash.clone();
    bad[14 * 4096 + 3 * 32 + 5] ^= 0x10;
    let (c, more, msg) = corruption(&data, &bad, &root);
    assert_eq!(
        c,
        Corruption::HashBlock {
            level: 0,
            index: 10,
            block: 14
        }
    );
    assert_eq!(more, 1);
    assert!(
        msg.ends_with(
            "hash block 14 of the hash device (bytes 57344..61440, level 0 block 10) does not \
             match its digest in level 1; 1 other block mismatches too"
        ),
        "{msg}"
    );

    // A flipped byte in the zero padding of the last level-0 block (one digest, then zeros).
    let mut bad = hash.clone();
    bad[132 * 4096 + 4000] ^= 0x01;
    let (c, _, _) = corruption(&data, &bad, &root);
    assert_eq!(
        c,
        Corruption::HashBlock {
            level: 0,
            index: 128,
            block: 132
        }
    );

    // Level 1, block 1 (hash device block 3).
    let mut bad = hash.clone();
    bad[3 * 4096] ^= 0xff;
    let (c, _, _) = corruption(&data, &bad, &root);
    assert_eq!(
        c,
        Corruption::HashBlock {
            level: 1,
            index: 1,
            block: 3
        }
    );

    // The top-level block: nothing above it but the root hash.
    let mut bad = hash.clone();
    bad[4096 + 40] ^= 0x01;
    let (c, _, msg) = corruption(&data, &bad, &root);
    assert!(
        matches!(c, Corruption::RootHash { expected, of_data_block: false, .. } if expected == root)
    );
    assert!(msg.contains("root hash mismatch"), "{msg}");

    // A wrong root hash with an intact tree.
    let mut other = root;
    other.0[0] ^= 1;
    let (c, more, msg) = corruption(&data, &hash, &other);
    assert_eq!(
        c,
        Corruption::RootHash {
            expected: other,
            actual: root,
            of_data_block: false
        }
    );
    assert_eq!(more, 0);
    assert_eq!(
        msg,
        format!(
            "data device and hash device do not verify: root hash mismatch: expected {other}, the \
             hash device's top-level block hashes to {root} (a hash device of another image, a \
             wrong root hash, or a damaged top-level block or salt)"
        )
    );

    // A changed salt in the superblock: every digest changes, the root hash names it.
    let mut bad = hash.clone();
    bad[88] ^= 0x01;
    let (c, _, _) = corruption(&data, &bad, &root);
    assert!(matches!(c, Corruption::RootHash { .. }));

    // Bytes of the data device past the tree are not covered (a partition rounded up).
    let mut longer = data.clone();
    longer.extend_from_slice(&noise(4096, 1));
    verify(Cursor::new(&longer), Cursor::new(&hash), &root).unwrap();
}

#[test]
fn one_block_data_has_no_tree() {
    let (data, hash, sb, root) = built(1);
    assert_eq!(hash.len(), 4096);
    verify(Cursor::new(&data), Cursor::new(&hash), &root).unwrap();
    assert!(matches!(
        root_hash_of_hash_device(Cursor::new(&hash), &sb),
        Err(Error::NoHashTree)
    ));
    let mut bad = data.clone();
    bad[100] ^= 1;
    let (c, _, msg) = corruption(&bad, &hash, &root);
    assert!(matches!(
        c,
        Corruption::RootHash {
            of_data_block: true,
            ..
        }
    ));
    assert!(msg.contains("the only data block hashes to"), "{msg}");
}

#[test]
fn veritysetup_also_refuses_what_verify_refuses() {
    // The stock verifier agrees that the tampered pairs are bad (so the fixtures really are).
    let dir = tempfile::tempdir().unwrap();
    let (data, hash, _, root) = built(300);
    let d = dir.path().join("data");
    let h = dir.path().join("hash");
    let root_hex = root.to_hex();
    let check = |data: &[u8], hash: &[u8]| {
        fs::write(&d, data).unwrap();
        fs::write(&h, hash).unwrap();
        run_checker(
            Command::new("/usr/sbin/veritysetup").args([
                "verify",
                d.to_str().unwrap(),
                h.to_str().unwrap(),
                &root_hex,
            ]),
            "cryptsetup-bin",
        )
        .0
    };
    assert!(check(&data, &hash));
    let mut bad = data.clone();
    bad[42 * 4096] ^= 1;
    assert!(!check(&bad, &hash));
    assert!(verify(Cursor::new(&bad), Cursor::new(&hash), &root).is_err());
    let mut bad = hash.clone();
    bad[2 * 4096 + 7] ^= 1;
    assert!(!check(&data, &bad));
    assert!(verify(Cursor::new(&data), Cursor::new(&bad), &root).is_err());
}
