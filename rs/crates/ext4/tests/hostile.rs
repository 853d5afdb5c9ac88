//! Bad and hostile tars: each is refused with a message naming the tar, the entry and the
//! problem, and no file appears under the output name.

mod common;

use common::*;
use icos_common::SourceDateEpoch;
use icos_ext4::{build_image, ImageSize, NoProgress, Options};
use tar::{EntryType, Header};

/// Builds from `bytes` and returns the error message, after checking nothing was left behind.
fn refuse_with(bytes: &[u8], opts: &Options, names_tar: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("hostile.tar");
    std::fs::write(&tar, bytes).unwrap();
    let out = dir.path().join("root.ext4");
    let err = build_image(&tar, &out, opts, &mut NoProgress)
        .expect_err("a hostile tar was accepted")
        .to_string();
    if names_tar {
        assert!(
            err.contains(&tar.display().to_string()),
            "the message must name the tar: {err}"
        );
    }
    assert!(!out.exists(), "output left under its final name");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "temporary files left behind: {left:?}");
    err
}

fn refuse(bytes: &[u8]) -> String {
    refuse_with(bytes, &Options::new("s", SourceDateEpoch(SDE)), true)
}

/// (name, type, data, link name) of a raw entry.
type Raw<'a> = (&'a [u8], EntryType, &'a [u8], &'a [u8]);

/// A tar of raw headers.
fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, t, body, link) in entries {
        let mut h: Header = raw_header(name, *t, body.len() as u64);
        if !link.is_empty() {
            h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        }
        if *t == EntryType::Directory {
            h.set_mode(0o755);
        }
        h.set_cksum();
        b.append(&h, *body).unwrap();
    }
    b.into_inner().unwrap()
}

const ROOT: Raw = (b"./", EntryType::Directory, b"", b"");

fn assert_has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "expected {p:?} in: {err}");
    }
}

#[test]
fn names_that_escape_or_are_malformed() {
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./../etc/passwd", EntryType::Regular, b"x", b""),
    ]));
    assert_has(
        &err,
        &[
            "entry \"./../etc/passwd\"",
            "\"..\" component",
            "escape the root",
        ],
    );
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./a/../../b", EntryType::Regular, b"x", b""),
    ]));
    assert_has(&err, &["\"./a/../../b\"", "escape the root"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b".//etc/passwd", EntryType::Regular, b"x", b""),
    ]));
    assert_has(&err, &["\".//etc/passwd\"", "empty component"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"/etc/passwd", EntryType::Regular, b"x", b""),
    ]));
    assert_has(&err, &["\"/etc/passwd\"", "does not start with \"./\""]);
    let err = refuse(&raw_tar(&[(b"./etc/", EntryType::Directory, b"", b"")]));
    assert_has(
        &err,
        &["\"./etc/\"", "first entry must be the root directory"],
    );
    let err = refuse(&raw_tar(&[ROOT, ROOT]));
    assert_has(&err, &["entry \"./\" is listed twice"]);
}

#[test]
fn structure_errors() {
    let err = refuse(&raw_tar(&[ROOT, (b"./a/b", EntryType::Regular, b"x", b"")]));
    assert_has(
        &err,
        &[
            "entry \"./a/b\"",
            "parent directory \"./a/\" is not in the tar before it",
        ],
    );
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./f", EntryType::Regular, b"x", b""),
        (b"./f/x", EntryType::Regular, b"y", b""),
    ]));
    assert_has(
        &err,
        &["entry \"./f/x\"", "parent \"./f\" is not a directory"],
    );
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./a", EntryType::Regular, b"x", b""),
        (b"./a", EntryType::Regular, b"y", b""),
    ]));
    assert_has(&err, &["entry \"./a\" is listed twice"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./x", EntryType::Link, b"", b"./missing"),
    ]));
    assert_has(
        &err,
        &[
            "entry \"./x\"",
            "hardlink target \"./missing\" is not an earlier entry",
        ],
    );
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./d/", EntryType::Directory, b"", b""),
        (b"./x", EntryType::Link, b"", b"./d"),
    ]));
    assert_has(&err, &["entry \"./x\"", "is a directory"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./x", EntryType::Link, b"", b"../../etc/shadow"),
    ]));
    assert_has(&err, &["entry \"./x\"", "escape"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./lost+found", EntryType::Regular, b"x", b""),
    ]));
    assert_has(
        &err,
        &["\"./lost+found\"", "/lost+found must be a directory"],
    );
    let err = refuse(&raw_tar(&[ROOT, (b"./s", EntryType::Symlink, b"", b"")]));
    assert_has(
        &err,
        &["entry \"./s\"", "symlink target must be 1 to 4095 bytes"],
    );
}

#[test]
fn unsupported_entries() {
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./sock", EntryType::new(b'Z'), b"", b""),
    ]));
    assert_has(&err, &["entry \"./sock\"", "unsupported entry type", "'Z'"]);
    let err = refuse(&raw_tar(&[
        ROOT,
        (b"./g", EntryType::XGlobalHeader, b"", b""),
    ]));
    assert_has(
        &err,
        &["entry \"./g\"", "unsupported entry type XGlobalHeader"],
    );

    let mut dev = raw_header(b"./dev", EntryType::Char, 0);
    dev.set_device_major(5000).unwrap();
    dev.set_device_minor(1).unwrap();
    dev.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&raw_header(b"./", EntryType::Directory, 0), &b""[..])
        .unwrap();
    b.append(&dev, &b""[..]).unwrap();
    let err = refuse(&b.into_inner().unwrap());
    assert_has(&err, &["entry \"./dev\"", "device 5000:1 is out of range"]);

    let mut b = tar::Builder::new(Vec::new());
    b.append(&raw_header(b"./", EntryType::Directory, 0), &b""[..])
        .unwrap();
    b.append_pax_extensions([("GNU.sparse.major", &b"1"[..])])
        .unwrap();
    b.append(&raw_header(b"./sparse", EntryType::Regular, 0), &b""[..])
        .unwrap();
    let err = refuse(&b.into_inner().unwrap());
    assert_has(
        &err,
        &["entry \"./sparse\"", "sparse files are not supported"],
    );

    let t = tar_bytes(vec![
        e("", Body::Dir),
        e("big", Body::File(vec![1])).xattr("user.huge", &[7; 5000]),
    ]);
    let err = refuse(&t);
    assert_has(&err, &["entry \"./big\"", "xattr block holds at most 4096"]);
    let t = tar_bytes(vec![
        e("", Body::Dir),
        e("f", Body::File(vec![1])).xattr("weird.ns", b"1"),
    ]);
    assert_has(&refuse(&t), &["entry \"./f\"", "namespace"]);
}

#[test]
fn truncated_and_corrupt_tars() {
    let good = tar_bytes(vec![
        e("", Body::Dir),
        e("a", Body::File(data(1, 10_000))),
        e("b", Body::File(data(2, 3000))),
    ]);
    // Layout: root header, a's header + 10240 bytes of data, b's header + 3072, two zero blocks.
    let b_header = 512 + 512 + 10240;
    let end = b_header + 512 + 3072;
    assert!(good.len() >= end + 1024);
    let err = refuse(&good[..b_header - 4000]); // inside a's data
    assert_has(&err, &["after entry \"./a\"", "truncated"]);
    let err = refuse(&good[..b_header + 100]); // inside b's header
    assert_has(
        &err,
        &["after entry \"./a\"", "ends inside a header", "truncated"],
    );
    let err = refuse(&good[..end]); // complete entries but no end-of-archive marker
    assert_has(
        &err,
        &["after entry \"./b\"", "end-of-archive marker", "truncated"],
    );
    let mut corrupt = good.clone();
    corrupt[b_header + 10] ^= 0xff; // b's name, checksum no longer matches
    let err = refuse(&corrupt);
    assert_has(&err, &["after entry \"./a\"", "wrong checksum"]);
    let err = refuse(b"");
    assert_has(&err, &["at its start", "truncated"]);
    let err = refuse(&data(3, 4096));
    assert_has(&err, &["at its start", "wrong checksum"]);
}

#[test]
fn bad_options() {
    let t = tar_bytes(vec![e("", Body::Dir)]);
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.label = "a-label-longer-than-16".into();
    assert_has(
        &refuse_with(&t, &o, false),
        &["label \"a-label-longer-than-16\"", "at most 16 bytes"],
    );
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.size = ImageSize::Bytes(1_000_000);
    assert_has(
        &refuse_with(&t, &o, false),
        &["size 1000000 bytes is not a multiple of 4 KiB"],
    );
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.inodes = Some(5);
    assert_has(
        &refuse_with(&t, &o, true),
        &["--inodes 5 is too few", "needs 11"],
    );
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.size = ImageSize::Bytes(32 << 10);
    assert_has(
        &refuse_with(&t, &o, true),
        &["is too small", "needs at least"],
    );
}

/// Values beyond what an ext4 field holds are refused by name, never truncated by a cast.
#[test]
fn values_too_wide_for_ext4_fields() {
    // A file larger than 2^32 - 1 blocks: the tar only claims it (PAX size, no data follows).
    let too_big = (u64::from(u32::MAX) * 4096 + 1).to_string();
    let mut t = Vec::new();
    push_block(&mut t, &raw_header(b"./", EntryType::Directory, 0), b"");
    let pax = pax_record("size", too_big.as_bytes());
    push_block(
        &mut t,
        &raw_header(b"./@PaxHeader", EntryType::XHeader, pax.len() as u64),
        &pax,
    );
    push_block(&mut t, &raw_header(b"./huge", EntryType::Regular, 0), b"");
    t.extend_from_slice(&[0u8; 1024]);
    assert_has(
        &refuse(&t),
        &[
            "entry \"./huge\"",
            &format!("its size {too_big} bytes is more than ext4 holds in one file"),
        ],
    );

    let t = tar_bytes(vec![e("", Body::Dir)]);
    let mut o = Options::new("s", SourceDateEpoch(SDE));
    o.inodes = Some(1 << 33);
    assert_has(
        &refuse_with(&t, &o, false),
        &["--inodes 8589934592 is more than an ext4 filesystem holds (4294967295)"],
    );
    // The CLI refuses such an epoch while parsing it; the library must not wrap it to 1970.
    let o = Options::new("s", SourceDateEpoch(1 << 33));
    assert_has(
        &refuse_with(&t, &o, false),
        &["SOURCE_DATE_EPOCH 8589934592 is beyond 2106-02-07"],
    );
}
