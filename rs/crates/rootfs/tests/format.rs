//! The rootfs tar format (ARCHITECTURE.md "The rootfs tar") and the manifest, checked on real
//! outputs: with GNU tar, with the tar crate, and byte by byte in the headers.

mod common;

use common::*;
use icos_common::Digest;
use icos_rootfs::RootfsBuilder;

fn build_to_files(layers: &[Vec<u8>]) -> (tempfile::TempDir, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = RootfsBuilder::new(dir.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    for (i, layer) in layers.iter().enumerate() {
        builder
            .apply_layer(&format!("layer {}", i + 1), &layer[..])
            .unwrap();
    }
    let tar_path = dir.path().join("rootfs.tar");
    let manifest_path = dir.path().join("rootfs.manifest.json");
    let report = builder.write(&tar_path, &manifest_path, None).unwrap();
    let tar = std::fs::read(&tar_path).unwrap();
    let json = std::fs::read_to_string(&manifest_path).unwrap();
    assert_eq!(report.output.sha256, Digest::of(&tar));
    assert_eq!(report.output.size, tar.len() as u64);
    // The file's entries are streamed from the tree; built in memory they are the same bytes.
    let (in_memory_tar, manifest) = flatten(layers).unwrap();
    assert_eq!(in_memory_tar, tar);
    assert_eq!(report.entries, manifest.entries.len());
    assert_eq!(
        serde_json::to_string_pretty(&manifest).unwrap() + "\n",
        json
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "only the two outputs exist: {names:?}");
    (dir, tar, json)
}

fn sample_layers() -> Vec<Vec<u8>> {
    let l1 = Layer::new()
        .raw(E {
            mode: 0o1777,
            mtime: 1_500_000_000,
            ..E::new("tmp/", b'5')
        })
        .raw(E {
            mode: 0o4755,
            uid: 0,
            gid: 0,
            data: b"#!/bin/sh\n",
            ..E::new("usr/bin/su", b'0')
        })
        .hardlink("usr/bin/aa-su", "usr/bin/su")
        .raw(E {
            mode: 0o640,
            uid: 1000,
            gid: 1000,
            mtime: EPOCH + 5,
            data: b"secret",
            ..E::new("home/u/.key", b'0')
        })
        .symlink("bin", "usr/bin")
        .raw(E {
            major: 1,
            minor: 3,
            mode: 0o666,
            ..E::new("dev/null", b'3')
        })
        .raw(E {
            mode: 0o644,
            ..E::new("run/fifo", b'6')
        })
        .finish();
    vec![l1]
}

#[test]
fn gnu_tar_lists_owners_modes_and_mtimes() {
    let (dir, _, _) = build_to_files(&sample_layers());
    let listing = gnu_tar_list(&dir.path().join("rootfs.tar"));
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected: &[(&str, &str, &str, &str)] = &[
        // mode, owner, date time, name (+ link)
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./"),
        (
            "lrwxrwxrwx",
            "0/0",
            "2020-09-13 12:26:40",
            "./bin -> usr/bin",
        ),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./dev/"),
        ("crw-rw-rw-", "0/0", "2020-09-13 12:26:40", "./dev/null"),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./home/"),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./home/u/"),
        (
            "-rw-r-----",
            "1000/1000",
            "2023-11-14 22:13:20",
            "./home/u/.key",
        ),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./run/"),
        ("prw-r--r--", "0/0", "2020-09-13 12:26:40", "./run/fifo"),
        ("drwxrwxrwt", "0/0", "2017-07-14 02:40:00", "./tmp/"),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./usr/"),
        ("drwxr-xr-x", "0/0", "2023-11-14 22:13:20", "./usr/bin/"),
        (
            "-rwsr-xr-x",
            "0/0",
            "2020-09-13 12:26:40",
            "./usr/bin/aa-su",
        ),
        (
            "hrwsr-xr-x",
            "0/0",
            "2020-09-13 12:26:40",
            "./usr/bin/su link to ./usr/bin/aa-su",
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{listing}");
    for (line, (mode, owner, time, name)) in lines.iter().zip(expected) {
        assert_eq!(line[0], *mode, "{listing}");
        assert_eq!(line[1], *owner, "{listing}");
        let rest = line[2..].join(" ");
        // size column, then date and time, then the name
        let after_size = rest.split_once(' ').unwrap().1;
        assert_eq!(after_size, format!("{time} {name}"), "{listing}");
    }
}

#[test]
fn headers_are_plain_ustar_with_empty_owner_names() {
    let (_, tar, _) = build_to_files(&sample_layers());
    let mut offset = 0;
    let mut headers = 0;
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(
            &h.as_bytes()[257..265],
            b"ustar\x0000",
            "POSIX ustar magic and version"
        );
        assert!(h.username_bytes().unwrap().is_empty() && h.groupname_bytes().unwrap().is_empty());
        assert!(entry.path_bytes().starts_with(b"./"));
        assert_ne!(
            h.entry_type(),
            tar::EntryType::XHeader,
            "no PAX needed for this tree"
        );
        headers += 1;
        offset = entry.raw_file_position() + entry.size();
    }
    assert_eq!(headers, 14);
    // Two zero blocks close the archive, and nothing follows them.
    let end = offset.div_ceil(512) as usize * 512;
    assert_eq!(tar.len(), end + 1024);
    assert!(tar[end..].iter().all(|&b| b == 0));
}

#[test]
fn pax_records_only_where_needed_and_sorted() {
    let mid = format!("usr/share/{}/{}", "d".repeat(90), "f".repeat(60)); // fits ustar prefix+name
    let long = format!("usr/share/{}", "x".repeat(300)); // needs PAX path
    let long_target = "t".repeat(150); // needs PAX linkpath
    let layer = Layer::new()
        .file(&mid, b"mid")
        .raw(E {
            data: b"long",
            uid: 1 << 21,
            gid: 7,
            pax: vec![
                ("path", long.as_bytes().to_vec()),
                ("uid", (1u64 << 21).to_string().into_bytes()),
                ("SCHILY.xattr.user.z", b"1".to_vec()),
                ("SCHILY.xattr.trusted.a", b"2".to_vec()),
            ],
            ..E::new("placeholder", b'0')
        })
        .raw(E {
            pax: vec![("linkpath", long_target.as_bytes().to_vec())],
            ..E::new("lnk", b'2')
        })
        .finish();
    let (_, tar, _) = build_to_files(&[layer]);
    let mut archive = tar::Archive::new(&tar[..]);
    archive.set_ignore_zeros(false);
    let mut raw = Vec::new();
    for entry in archive.entries().unwrap().raw(true) {
        let mut entry = entry.unwrap();
        let kind = entry.header().entry_type().as_byte() as char;
        let name = String::from_utf8(entry.header().path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        raw.push((kind, name, data));
    }
    let pax: Vec<_> = raw.iter().filter(|r| r.0 == 'x').collect();
    assert_eq!(pax.len(), 2, "PAX only for the long path and the long link");
    let records = String::from_utf8(pax[1].2.clone()).unwrap();
    let keys: Vec<_> = records
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        [
            "SCHILY.xattr.trusted.a",
            "SCHILY.xattr.user.z",
            "path",
            "uid"
        ]
    );
    let link_records = String::from_utf8(pax[0].2.clone()).unwrap();
    assert_eq!(link_records, format!("164 linkpath={long_target}\n")); // 3 + 1 + 8 + 1 + 150 + 1 bytes
                                                                       // The mid-length name sits in ustar prefix + name, without PAX.
    let mid_entry = raw
        .iter()
        .find(|r| r.1 == format!("./{mid}"))
        .expect("ustar prefix split");
    assert_eq!(mid_entry.0, '0');
    // Read back normally, everything round-trips.
    let all = members(&tar);
    let long_member = member(&all, &format!("./{long}"));
    assert_eq!(
        (long_member.3, long_member.4, long_member.7.as_slice()),
        (1 << 21, 7, &b"long"[..])
    );
    assert_eq!(member(&all, "./lnk").6, long_target);
    let listing = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, &tar).unwrap();
        gnu_tar_list(&path)
    };
    assert!(listing.contains(&format!("./{long}")), "{listing}");
    assert!(listing.contains("2097152/7"), "{listing}");
}

#[test]
fn manifest_text_has_the_documented_shape() {
    let layer = Layer::new()
        .raw(E {
            data: b"hello",
            ..E::new("etc/motd", b'0')
        })
        .hardlink("etc/a-motd", "etc/motd")
        .symlink("etc/link", "motd")
        .raw(E {
            pax: vec![("SCHILY.xattr.user.k", vec![0xab, 0x01])],
            ..E::new("etc/", b'5')
        })
        .finish();
    let (_, tar, json) = build_to_files(&[layer]);
    let hello = Digest::of(b"hello");
    let expected = format!(
        r#"{{
  "schema": "icos.rootfs-manifest/v1",
  "tool": {{
    "name": "icos-rootfs",
    "version": "{version}"
  }},
  "source_date_epoch": 1700000000,
  "inputs": {{
    "files": [],
    "extra_layers": []
  }},
  "output": {{
    "sha256": "{out}",
    "size": {size}
  }},
  "entries": [
    {{
      "path": "/",
      "type": "dir",
      "mode": "0755",
      "uid": 0,
      "gid": 0,
      "mtime": 1700000000
    }},
    {{
      "path": "/etc",
      "type": "dir",
      "mode": "0755",
      "uid": 0,
      "gid": 0,
      "mtime": 1600000000,
      "xattrs": {{
        "user.k": "ab01"
      }}
    }},
    {{
      "path": "/etc/a-motd",
      "type": "file",
      "mode": "0644",
      "uid": 0,
      "gid": 0,
      "mtime": 1600000000,
      "size": 5,
      "sha256": "{hello}"
    }},
    {{
      "path": "/etc/link",
      "type": "symlink",
      "mode": "0777",
      "uid": 0,
      "gid": 0,
      "mtime": 1600000000,
      "target": "motd"
    }},
    {{
      "path": "/etc/motd",
      "type": "hardlink",
      "mode": "0644",
      "uid": 0,
      "gid": 0,
      "mtime": 1600000000,
      "target": "/etc/a-motd"
    }}
  ]
}}
"#,
        version = icos_common::TOOLS_VERSION,
        out = Digest::of(&tar),
        size = tar.len(),
    );
    assert_eq!(json, expected);
}

#[test]
fn same_inputs_same_bytes() {
    let (_, one, m1) = build_to_files(&sample_layers());
    let (_, two, m2) = build_to_files(&sample_layers());
    assert_eq!(one, two);
    assert_eq!(m1, m2);
}
