//! Layer semantics: whiteouts, opaque directories, replacement, hardlinks, special files, xattrs.

mod common;

use common::*;
use icos_rootfs::manifest::EntryType;

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
    let base = Layer::new()
        .dir("etc/")
        .file("etc/keep", b"keep")
        .file("etc/gone", b"gone")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/a", b"a")
        .dir("var/cache/sub/")
        .file("var/cache/sub/b", b"b")
        .dir("opt/")
        .file("opt/old", b"old")
        .dir("srv/")
        .file("srv/old", b"old")
        .finish();
    let upper = Layer::new()
        .file("etc/.wh.gone", b"")
        // whole subtree deleted
        .file("var/.wh.cache", b"")
        // opaque marker AFTER a same-layer entry: the entry survives, lower children do not
        .dir("opt/")
        .file("opt/new", b"new")
        .file("opt/.wh..wh..opq", b"")
        // opaque marker BEFORE the same-layer entry: same result
        .file("srv/.wh..wh..opq", b"")
        .file("srv/new", b"new")
        // whiteout next to a re-created path of the same layer: the new one stays
        .file("etc/.wh.keep", b"")
        .file("etc/keep", b"replaced")
        // whiteout of something that never existed is harmless, AUFS metadata is skipped
        .file("etc/.wh.never", b"")
        .file(".wh..wh.plnk", b"")
        .finish();
    let (tar, manifest) = flatten(&[base, upper]).unwrap();
    assert_eq!(
        names(&tar),
        [
            "./",
            "./etc/",
            "./etc/keep",
            "./opt/",
            "./opt/new",
            "./srv/",
            "./srv/new",
            "./var/"
        ]
    );
    assert_eq!(member(&members(&tar), "./etc/keep").7, b"replaced");
    assert_eq!(manifest.entries.len(), 8);
}

#[test]
fn later_layers_replace_and_directories_merge() {
    let l1 = Layer::new()
        .dir("a/")
        .file("a/x", b"x")
        .raw(E {
            mode: 0o700,
            uid: 5,
            ..E::new("d/", b'5')
        })
        .file("d/child", b"c")
        .file("f", b"file")
        .finish();
    let l2 = Layer::new()
        .file("a", b"a is a file now") // a non-dir over a dir drops the subtree
        .raw(E {
            mode: 0o750,
            uid: 7,
            ..E::new("d/", b'5')
        }) // dir over dir: new attributes, children kept
        .symlink("f", "target") // a symlink replaces a file
        .finish();
    let l3 = Layer::new().dir("a/").file("a/y", b"y").finish(); // a dir over a file
    let (tar, _) = flatten(&[l1, l2, l3]).unwrap();
    let all = members(&tar);
    assert_eq!(
        names(&tar),
        ["./", "./a/", "./a/y", "./d/", "./d/child", "./f"]
    );
    let d = member(&all, "./d/");
    assert_eq!((d.2, d.3), (0o750, 7));
    let f = member(&all, "./f");
    assert_eq!((f.1, f.6.as_str()), ('2', "target"));
}

#[test]
fn implicit_parents_are_0755_root_owned_at_the_epoch() {
    let layer = Layer::new()
        .raw(E {
            uid: 3,
            gid: 4,
            mode: 0o600,
            ..E::new("usr/lib/deep/file", b'0')
        })
        .finish();
    let (tar, _) = flatten(&[layer]).unwrap();
    let all = members(&tar);
    assert_eq!(
        names(&tar),
        [
            "./",
            "./usr/",
            "./usr/lib/",
            "./usr/lib/deep/",
            "./usr/lib/deep/file"
        ]
    );
    for dir in ["./", "./usr/", "./usr/lib/", "./usr/lib/deep/"] {
        let m = member(&all, dir);
        assert_eq!(
            (m.1, m.2, m.3, m.4, m.5),
            ('5', 0o755, 0, 0, EPOCH),
            "{dir}"
        );
    }
    let f = member(&all, "./usr/lib/deep/file");
    assert_eq!((f.2, f.3, f.4, f.5), (0o600, 3, 4, 1_600_000_000));
}

#[test]
fn hardlinks_share_the_inode_and_keep_content_when_the_target_is_replaced() {
    let l1 = Layer::new()
        .raw(E {
            mode: 0o4755,
            data: b"original",
            ..E::new("bin/z", b'0')
        })
        .hardlink("bin/a", "bin/z")
        .hardlink("./bin/m", "./bin/z")
        .finish();
    // The link's original target path gets new content; the other names keep the old inode.
    let l2 = Layer::new()
        .file("bin/z", b"new content")
        .hardlink("sbin/q", "bin/z")
        .finish();
    let (tar, manifest) = flatten(&[l1, l2]).unwrap();
    let all = members(&tar);
    let a = member(&all, "./bin/a");
    assert_eq!((a.1, a.2, a.7.as_slice()), ('0', 0o4755, &b"original"[..]));
    let m = member(&all, "./bin/m");
    assert_eq!((m.1, m.6.as_str(), m.7.len()), ('1', "./bin/a", 0));
    assert_eq!(member(&all, "./bin/z").7, b"new content");
    let q = member(&all, "./sbin/q");
    assert_eq!((q.1, q.6.as_str()), ('1', "./bin/z"));
    let entry = manifest
        .entries
        .iter()
        .find(|e| e.path == "/bin/m")
        .unwrap();
    assert_eq!(
        (entry.kind, entry.target.as_deref(), entry.size),
        (EntryType::Hardlink, Some("/bin/a"), None)
    );
    assert_eq!(entry.mode, "4755");
}

#[test]
fn hardlinks_to_specials_and_symlinks_stay_linked_across_layers() {
    let l1 = Layer::new()
        .raw(E {
            mode: 0o600,
            uid: 9,
            ..E::new("run/p", b'6')
        })
        .hardlink("run/q", "run/p")
        .raw(E {
            major: 1,
            minor: 3,
            mode: 0o666,
            ..E::new("dev/null", b'3')
        })
        .hardlink("dev/zz", "dev/null")
        .raw(E {
            major: 8,
            minor: 0,
            ..E::new("dev/sda", b'4')
        })
        .hardlink("dev/disk", "dev/sda")
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ash", "bin/sh")
        .raw(E::new("x/a", b'6'))
        .hardlink("x/b", "x/a")
        .hardlink("x/c", "x/a")
        .finish();
    let l2 = Layer::new()
        .hardlink("srv/p2", "run/q") // a lower layer's group, through its second name
        .file("x/.wh.a", b"") // one name of three gone: the other two stay linked
        .file("dev/sda", b"now a file") // the target replaced: its link keeps the device, alone
        .finish();
    let (tar, manifest) = flatten(&[l1, l2]).unwrap();
    let found: Vec<(String, char, String)> = members(&tar)
        .into_iter()
        .filter(|m| m.1 != '5')
        .map(|m| (m.0, m.1, m.6))
        .collect();
    let want = [
        ("./bin/ash", '2', "busybox"),
        ("./bin/sh", '1', "./bin/ash"),
        ("./dev/disk", '4', ""),
        ("./dev/null", '3', ""),
        ("./dev/sda", '0', ""),
        ("./dev/zz", '1', "./dev/null"),
        ("./run/p", '6', ""),
        ("./run/q", '1', "./run/p"),
        ("./srv/p2", '1', "./run/p"),
        ("./x/b", '6', ""),
        ("./x/c", '1', "./x/b"),
    ]
    .map(|(n, t, l)| (n.to_string(), t, l.to_string()));
    assert_eq!(found, want);
    let q = manifest
        .entries
        .iter()
        .find(|e| e.path == "/srv/p2")
        .unwrap();
    assert_eq!(
        (q.kind, q.target.as_deref(), q.mode.as_str(), q.uid),
        (EntryType::Hardlink, Some("/run/p"), "0600", 9)
    );
}

#[test]
fn special_files_xattrs_and_times() {
    let xattr_value = vec![1u8, 0, 0, 2, 0, 0x20, 0, 0];
    let layer = Layer::new()
        .raw(E {
            major: 1,
            minor: 3,
            mode: 0o666,
            ..E::new("dev/null", b'3')
        })
        .raw(E {
            major: 8,
            minor: 1,
            mode: 0o660,
            gid: 6,
            ..E::new("dev/sda1", b'4')
        })
        .raw(E {
            mode: 0o600,
            ..E::new("run/initctl", b'6')
        })
        .raw(E {
            data: b"ping",
            mode: 0o755,
            pax: vec![
                ("SCHILY.xattr.security.capability", xattr_value.clone()),
                ("atime", b"1234.5".to_vec()),
                ("ctime", b"1234.5".to_vec()),
                ("mtime", b"1650000000.999".to_vec()),
            ],
            ..E::new("usr/bin/ping", b'0')
        })
        .raw(E {
            // libarchive's form: %-escaped name, base64 value (unpadded)
            pax: vec![("LIBARCHIVE.xattr.user.a%3Db", b"aGk".to_vec())],
            ..E::new("etc/", b'5')
        })
        .raw(E {
            mtime: EPOCH + 1000,
            ..E::new("future", b'0')
        })
        .finish();
    let (tar, manifest) = flatten(&[layer]).unwrap();
    let all = members(&tar);
    assert_eq!(member(&all, "./dev/null").1, '3');
    assert_eq!(member(&all, "./dev/sda1").1, '4');
    assert_eq!(member(&all, "./run/initctl").1, '6');
    assert_eq!(
        member(&all, "./future").5,
        EPOCH,
        "mtime clamped to SOURCE_DATE_EPOCH"
    );
    assert_eq!(
        member(&all, "./usr/bin/ping").5,
        1_650_000_000,
        "PAX mtime floored"
    );

    let by_path = |p: &str| {
        manifest
            .entries
            .iter()
            .find(|e| e.path == p)
            .unwrap()
            .clone()
    };
    let null = by_path("/dev/null");
    assert_eq!(
        (null.kind, null.major, null.minor, null.mode.as_str()),
        (EntryType::Char, Some(1), Some(3), "0666")
    );
    let sda = by_path("/dev/sda1");
    assert_eq!(
        (sda.kind, sda.major, sda.minor, sda.gid),
        (EntryType::Block, Some(8), Some(1), 6)
    );
    assert_eq!(by_path("/run/initctl").kind, EntryType::Fifo);
    assert_eq!(
        by_path("/usr/bin/ping").xattrs["security.capability"],
        hex::encode(&xattr_value)
    );
    assert_eq!(by_path("/etc").xattrs["user.a=b"], hex::encode(b"hi"));

    // The output carries xattrs as SCHILY records, and no atime/ctime anywhere.
    let mut archive = tar::Archive::new(&tar[..]);
    let mut saw_xattr = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for record in pax {
                let record = record.unwrap();
                let key = record.key().unwrap();
                assert!(
                    key.starts_with("SCHILY.xattr."),
                    "unexpected PAX record {key}"
                );
                saw_xattr += 1;
            }
        }
    }
    assert_eq!(saw_xattr, 2);
}

#[test]
fn input_entry_order_does_not_matter() {
    let forward = Layer::new()
        .dir("b/")
        .file("b/2", b"two")
        .file("a", b"one")
        .hardlink("c", "a")
        .symlink("d", "a")
        .finish();
    let backward = Layer::new()
        .file("a", b"one")
        .symlink("d", "a")
        .file("b/2", b"two")
        .dir("b/")
        .hardlink("c", "a")
        .finish();
    let (one, m1) = flatten(&[forward]).unwrap();
    let (two, m2) = flatten(&[backward]).unwrap();
    assert_eq!(one, two);
    assert_eq!(m1, m2);
    assert_eq!(m1.output.size, one.len() as u64);
    assert_eq!(m1.output.sha256, icos_common::Digest::of(&one));
}

#[test]
fn xattr_values_with_newlines_and_equals_are_kept_byte_for_byte() {
    // The layer's PAX header (records framed by their length prefix, written by hand in
    // `Layer::raw`) holds a value with 0x0A and '=' bytes, followed by mtime and path records.
    let long = format!("dir/{}", "x".repeat(120));
    let layer = Layer::new()
        .dir("dir/")
        .raw(E {
            data: b"nl",
            pax: vec![
                ("SCHILY.xattr.user.nl", b"a\nb=c".to_vec()),
                ("SCHILY.xattr.user.z", b"\n".to_vec()),
                ("mtime", b"1650000000.25".to_vec()),
            ],
            ..E::new(&long, b'0')
        })
        .finish();
    let (tar, manifest) = flatten(&[layer]).unwrap();
    let entry = manifest
        .entries
        .iter()
        .find(|e| e.path == format!("/{long}"))
        .expect("the long path survives the newline before it");
    assert_eq!(entry.xattrs["user.nl"], hex::encode(b"a\nb=c"));
    assert_eq!(entry.xattrs["user.z"], "0a");
    assert_eq!(entry.mtime, 1_650_000_000);

    // The output tar carries the same records, each with a correct length prefix.
    let has = |needle: &[u8]| tar.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"30 SCHILY.xattr.user.nl=a\nb=c\n"));
    assert!(has(b"25 SCHILY.xattr.user.z=\n\n"));
    let mut reader = icos_common::tarread::TarReader::new(&tar[..]).require_end_marker();
    let mut found = None;
    while let Some(e) = reader.next_entry().unwrap() {
        if e.path == format!("./{long}").as_bytes() {
            found = Some(e);
        }
    }
    let found = found.unwrap();
    assert_eq!(
        found.xattrs().collect::<Vec<_>>(),
        [(&b"user.nl"[..], &b"a\nb=c"[..]), (b"user.z", b"\n")]
    );
}

/// Repeated markers in one layer act once (what they hide is gone after the first), and what the
/// layer writes around them survives; deep trees keep parent checks (the cost shapes are in
/// scripts/bench-fs-shapes.sh, not timed here).
#[test]
fn repeated_markers_and_deep_trees() {
    let base = Layer::new()
        .dir("a/")
        .file("a/old", b"o")
        .dir("b/")
        .file("b/old", b"o")
        .finish();
    let upper = Layer::new()
        .file("a/.wh..wh..opq", b"")
        .file("a/new1", b"1")
        .file("a/.wh..wh..opq", b"")
        .file("a/new2", b"2")
        .file("a/.wh..wh..opq", b"")
        .file("b/.wh.old", b"")
        .file("b/old", b"again")
        .file("b/.wh.old", b"")
        .finish();
    let (tar, _) = flatten(&[base, upper]).unwrap();
    assert_eq!(
        names(&tar),
        ["./", "./a/", "./a/new1", "./a/new2", "./b/", "./b/old"]
    );

    let mut deep = Layer::new();
    let mut path = String::new();
    for _ in 0..300 {
        path.push_str("d/");
        deep.dir(&path);
    }
    deep.file(&format!("{path}f"), b"x");
    let (tar, _) = flatten(&[deep.finish()]).unwrap();
    assert_eq!(names(&tar).len(), 302);
    // Implicit parents of a deep entry are created, and a file above it is still refused.
    let implicit = Layer::new().file("x/y/z/w", b"w").finish();
    let (tar, _) = flatten(&[implicit]).unwrap();
    assert_eq!(
        names(&tar),
        ["./", "./x/", "./x/y/", "./x/y/z/", "./x/y/z/w"]
    );
    let under_file = Layer::new()
        .dir("x/")
        .file("x/f", b"")
        .file("x/f/g/h", b"")
        .finish();
    let err = flatten(&[under_file]).unwrap_err().to_string();
    assert!(err.contains("x/f/g/h") && err.contains("x/f"), "{err}");
}

/// Every file's manifest digest is its content's, whatever its size and however far apart the
/// files lie: a file bigger than a release step (32 MiB) between small ones, across two layers.
/// `flatten` also checks the mapped layer against the streamed one, which hashes on the way in.
#[test]
fn file_digests_cover_big_and_small_files_across_layers() {
    let big: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 251) as u8).collect();
    let l1 = Layer::new()
        .file("a", b"before")
        .file("big", &big)
        .file("c", b"after")
        .finish();
    let l2 = Layer::new().file("a", b"replaced").file("d", b"").finish();
    let (_, manifest) = flatten(&[l1, l2]).unwrap();
    let digest_of = |path: &str| {
        let entry = manifest.entries.iter().find(|e| e.path == path).unwrap();
        entry.sha256.unwrap()
    };
    for (path, content) in [
        ("/a", &b"replaced"[..]),
        ("/big", &big[..]),
        ("/c", b"after"),
        ("/d", b""),
    ] {
        assert_eq!(digest_of(path), icos_common::Digest::of(content), "{path}");
    }
}
