//! icos-deb against real packages made by dpkg-deb, and against broken ones.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use icos_common::Digest;
use icos_deb::{data_tar, write_layer, DebError, LayerOptions};
use icos_testsupport::{pax_record, push_ustar};

/// Builds a real .deb with dpkg-deb (xz or zstd data.tar, as Debian ships them).
fn make_deb(dir: &Path, compression: &str) -> PathBuf {
    let root = dir.join(format!("pkg-{compression}"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        "Package: icos-test\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: test\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("boot")).unwrap();
    fs::create_dir_all(root.join("usr/lib/systemd/boot/efi")).unwrap();
    fs::create_dir_all(root.join("lib/modules/6.1/kernel/drivers/virtio")).unwrap();
    fs::write(root.join("boot/vmlinuz-6.1"), b"kernel bytes").unwrap();
    fs::write(
        root.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
        b"MZ boot",
    )
    .unwrap();
    fs::write(
        root.join("lib/modules/6.1/kernel/drivers/virtio/virtio_blk.ko"),
        b"module",
    )
    .unwrap();
    fs::set_permissions(
        root.join("boot/vmlinuz-6.1"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let deb = dir.join(format!("test-{compression}.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb runs (apt-get install dpkg)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    deb
}

fn list(layer: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(layer).unwrap());
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

#[test]
fn selects_and_renames_members_of_xz_and_zstd_packages() {
    let dir = tempfile::tempdir().unwrap();
    for compression in ["xz", "zstd", "gzip"] {
        let deb = make_deb(dir.path(), compression);
        let out = dir.path().join(format!("layer-{compression}.tar"));
        let opts = LayerOptions {
            include: vec![
                "/boot/vmlinuz-*".into(),
                "/usr/lib/systemd/boot/efi/*.efi".into(),
            ],
            renames: vec![
                ("/boot/vmlinuz-6.1".into(), "/vmlinuz".into()),
                (
                    "/usr/lib/systemd/boot/efi/systemd-bootx64.efi".into(),
                    "/EFI/BOOT/BOOTX64.EFI".into(),
                ),
            ],
            expect: Some(icos_common::sha256_file(&deb).unwrap().0),
        };
        let summary = write_layer(&deb, &opts, &out).unwrap();
        let entries = list(&out);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["vmlinuz", "EFI/BOOT/BOOTX64.EFI"], "{compression}");
        assert_eq!(entries[0].1, b"kernel bytes");
        assert_eq!(summary.entries, 2);
        assert_eq!(summary.sha256, icos_common::sha256_file(&out).unwrap().0);

        // The same package gives the same layer bytes.
        let again = dir.path().join("again.tar");
        write_layer(&deb, &opts, &again).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
    }
}

#[test]
fn refuses_wrong_digest_non_debs_and_stale_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let deb = make_deb(dir.path(), "xz");
    let out = dir.path().join("layer.tar");

    let wrong = LayerOptions {
        expect: Some(Digest::of(b"something else")),
        ..Default::default()
    };
    let err = write_layer(&deb, &wrong, &out).unwrap_err();
    assert!(matches!(err, DebError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("not the pinned package"), "{err}");
    assert!(
        !out.exists(),
        "no output under the final name after an error"
    );

    let stale = LayerOptions {
        include: vec!["/boot/vmlinuz-9.9*".into()],
        ..Default::default()
    };
    let err = write_layer(&deb, &stale, &out).unwrap_err();
    assert!(err.to_string().contains("matched nothing"), "{err}");
    assert!(!out.exists());

    let rename = LayerOptions {
        renames: vec![("/boot/missing".into(), "/x".into())],
        ..Default::default()
    };
    let err = write_layer(&deb, &rename, &out).unwrap_err();
    assert!(
        err.to_string().contains("rename \"/boot/missing\""),
        "{err}"
    );

    let not_deb = dir.path().join("not.deb");
    fs::write(&not_deb, b"!<arch>\nrandom junk that is no header").unwrap();
    assert!(matches!(data_tar(&not_deb), Err(DebError::NotADeb { .. })));
    fs::write(&not_deb, b"PK\x03\x04 a zip").unwrap();
    let err = data_tar(&not_deb).err().unwrap();
    assert!(err.to_string().contains("not an ar archive"), "{err}");
}

#[test]
fn truncated_package_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let deb = make_deb(dir.path(), "xz");
    let bytes = fs::read(&deb).unwrap();
    let cut = dir.path().join("cut.deb");
    fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let out = dir.path().join("layer.tar");
    let err = write_layer(&cut, &LayerOptions::default(), &out).unwrap_err();
    assert!(err.to_string().contains("cut.deb"), "{err}");
    assert!(!out.exists());
}

/// An `ar` archive of `(name, data)` members, as `.deb` packages are.
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{name}/"),
            0,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn pax_values_with_newlines_neither_break_nor_rename_members() {
    // A PAX data.tar (not what dpkg-deb writes, but a valid package): an xattr value whose second
    // line looks like a `path` record to a parser that splits at newlines, then the real path.
    let long = format!("./usr/share/doc/{}", "d".repeat(120));
    let records = [
        pax_record("SCHILY.xattr.user.nl", b"a=b\n19 path=./etc/evil"),
        pax_record("path", long.as_bytes()),
    ]
    .concat();
    let mut data = Vec::new();
    let mut add = |name: &str, kind: tar::EntryType, body: &[u8]| {
        push_ustar(&mut data, name, kind, 0o644, 1_700_000_000, body)
    };
    add("./", tar::EntryType::Directory, b"");
    add("./@PaxHeader", tar::EntryType::XHeader, &records);
    add(
        "./usr/share/doc/truncated",
        tar::EntryType::Regular,
        b"doc\n",
    );
    add("./boot/vmlinuz", tar::EntryType::Regular, b"kernel");
    data.extend_from_slice(&[0u8; 1024]);
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("pax.deb");
    fs::write(
        &deb,
        ar(&[("debian-binary", b"2.0\n"), ("data.tar", &data)]),
    )
    .unwrap();
    let out = dir.path().join("layer.tar");
    let summary = write_layer(&deb, &LayerOptions::default(), &out).unwrap();
    assert_eq!(summary.entries, 2);
    let entries = list(&out);
    assert_eq!(entries[0].0, long[2..]);
    assert_eq!(entries[0].1, b"doc\n");
    assert_eq!(
        (entries[1].0.as_str(), &entries[1].1[..]),
        ("boot/vmlinuz", &b"kernel"[..])
    );
}

#[test]
fn extracts_one_regular_file_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let deb = make_deb(dir.path(), "xz");
    let root = dir.path().join("pkg-xz");
    std::os::unix::fs::symlink("vmlinuz-6.1", root.join("boot/vmlinuz")).unwrap();
    let linked = dir.path().join("linked.deb");
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&linked)
        .output()
        .unwrap();
    assert!(built.status.success());

    let out = dir.path().join("stub.efi");
    let expected = Digest::from_bytes(sha2_of(b"MZ boot"));
    let summary = icos_deb::extract_file(
        &deb,
        None,
        "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        &out,
    )
    .unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"MZ boot");
    assert_eq!((summary.sha256, summary.size), (expected, 7));

    let missing = dir.path().join("missing");
    let err = icos_deb::extract_file(&deb, None, "/boot/nothing", &missing).unwrap_err();
    assert!(matches!(err, DebError::UnusedInclude { .. }), "{err}");
    assert!(!missing.exists(), "no output under the final name");

    let err = icos_deb::extract_file(&linked, None, "/boot/vmlinuz", &missing).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(!missing.exists());

    let wrong = Digest::from_bytes([7; 32]);
    assert!(icos_deb::extract_file(&deb, Some(&wrong), "/boot/vmlinuz-6.1", &missing).is_err());
    assert!(!missing.exists());
}

fn sha2_of(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}
