//! Hostile layers: each is refused with an error naming the layer and the entry, and a failed
//! build leaves nothing under the output names (and nothing else in the output directory).

mod common;

use std::io::{self, Read, Write};

use common::*;
use icos_common::mapped::MappedFile;
use icos_rootfs::{EntryProblem, RootfsBuilder, RootfsError};

/// Builds through `write()` into a fresh directory, with the layers streamed and then mapped in
/// place; checks that both refuse with the same message and that the failure left no file.
fn must_fail(layers: &[Vec<u8>]) -> String {
    let streamed = must_fail_as(layers, ReadAs::Stream);
    let mapped = must_fail_as(layers, ReadAs::Mapped);
    assert_eq!(
        streamed, mapped,
        "streamed and mapped layers are refused differently"
    );
    streamed
}

fn must_fail_as(layers: &[Vec<u8>], how: ReadAs) -> String {
    let dir = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let result = (|| {
        let mut builder = RootfsBuilder::new(dir.path(), EPOCH.to_string().parse().unwrap())?;
        for (i, layer) in layers.iter().enumerate() {
            let name = format!("layer {} (test)", i + 1);
            apply(&mut builder, inputs.path(), &name, layer, how)?;
        }
        builder.write(
            &dir.path().join("rootfs.tar"),
            &dir.path().join("rootfs.manifest.json"),
            None,
        )
    })();
    let err = result.expect_err("a hostile layer was accepted");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "a failed build left files behind: {leftovers:?}"
    );
    err.to_string()
}

fn assert_refused(layers: &[Vec<u8>], layer: &str, entry: &str, problem: &str) {
    let message = must_fail(layers);
    let prefix = format!("{layer}: entry {entry:?}: ");
    assert!(
        message.starts_with(&prefix),
        "{message:?} does not start with {prefix:?}"
    );
    assert!(
        message.contains(problem),
        "{message:?} does not say {problem:?}"
    );
}

#[test]
fn dotdot_escaping_the_root() {
    let layer = Layer::new().file("etc/../../evil", b"x").finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "etc/../../evil",
        "climbs above the image root",
    );
    let layer = Layer::new().file("/../etc/passwd", b"x").finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "/../etc/passwd",
        "climbs above the image root",
    );
}

#[test]
fn leading_slash_and_dot_are_root_relative() {
    let layer = Layer::new()
        .file("/etc/a", b"a")
        .file("./etc/b", b"b")
        .file("etc/x/../c", b"c")
        .finish();
    let (tar, _) = flatten(&[layer]).unwrap();
    assert_eq!(
        names(&tar),
        ["./", "./etc/", "./etc/a", "./etc/b", "./etc/c"]
    );
}

#[test]
fn writing_through_a_symlink_or_file_parent() {
    let lower = Layer::new()
        .symlink("lib", "/tmp/outside")
        .file("etc", b"file")
        .finish();
    let through_link = Layer::new().file("lib/evil.so", b"x").finish();
    assert_refused(
        &[lower.clone(), through_link],
        "layer 2 (test)",
        "lib/evil.so",
        "its parent /lib is a symlink",
    );
    let through_file = Layer::new().dir("etc/sub/").finish();
    assert_refused(
        &[lower.clone(), through_file],
        "layer 2 (test)",
        "etc/sub/",
        "its parent /etc is a regular file",
    );
    // The same inside one layer, and for whiteouts (which would otherwise delete through the link).
    let same_layer = Layer::new().symlink("x", "/").file("x/y", b"").finish();
    assert_refused(
        &[same_layer],
        "layer 1 (test)",
        "x/y",
        "its parent /x is a symlink",
    );
    let whiteout = Layer::new().file("lib/.wh.libc.so", b"").finish();
    assert_refused(
        &[lower, whiteout],
        "layer 2 (test)",
        "lib/.wh.libc.so",
        "its parent /lib is a symlink",
    );
}

#[test]
fn hardlink_problems() {
    let missing = Layer::new().hardlink("a", "nowhere").finish();
    assert_refused(
        &[missing],
        "layer 1 (test)",
        "a",
        "hardlink target /nowhere does not exist",
    );
    let escaping = Layer::new()
        .file("x", b"")
        .hardlink("a", "../../etc/shadow")
        .finish();
    assert_refused(
        &[escaping],
        "layer 1 (test)",
        "a",
        "hardlink target \"../../etc/shadow\" climbs above",
    );
    let escaping_name = Layer::new().file("x", b"").hardlink("../a", "x").finish();
    assert_refused(
        &[escaping_name],
        "layer 1 (test)",
        "../a",
        "climbs above the image root",
    );
    let to_dir = Layer::new().dir("d/").hardlink("a", "d").finish();
    assert_refused(&[to_dir], "layer 1 (test)", "a", "is a directory");
    // A link whose target appears only later in the same layer is missing too.
    let forward = Layer::new().hardlink("a", "b").file("b", b"").finish();
    assert_refused(
        &[forward],
        "layer 1 (test)",
        "a",
        "hardlink target /b does not exist",
    );
}

#[test]
fn whiteouts_of_the_root_or_parents() {
    for name in [".wh..", ".wh...", "etc/.wh..", "etc/.wh...", ".wh."] {
        let layer = Layer::new().dir("etc/").file(name, b"").finish();
        let message = must_fail(&[layer]);
        assert!(
            message.starts_with(&format!("layer 1 (test): entry {name:?}: whiteout")),
            "{message}"
        );
        assert!(
            message.contains("a whiteout can only name an entry inside its directory"),
            "{message}"
        );
    }
    let escaping = Layer::new().file("../.wh.etc", b"").finish();
    assert_refused(&[escaping], "layer 1 (test)", "../.wh.etc", "climbs above");
}

#[test]
fn truncated_layer() {
    let full = Layer::new()
        .file("small", b"ok")
        .file("big", &[7u8; 5000])
        .finish();
    // Cut inside the data of "big": 512 header + 512 data ("small") + 512 header + 1000 bytes.
    let cut = full[..512 * 3 + 1000].to_vec();
    assert_refused(
        &[cut],
        "layer 1 (test)",
        "big",
        "header says 5000 bytes, only 1000 are there",
    );
    // Cut inside a header.
    let cut = full[..512 + 512 + 100].to_vec();
    let message = must_fail(&[cut]);
    assert!(
        message.starts_with("layer 1 (test): cannot read the tar header after entry \"small\""),
        "{message}"
    );
}

#[test]
fn conflicting_types_in_one_layer() {
    let layer = Layer::new().file("x", b"").dir("x/").finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "x/",
        "both as a regular file and as a directory",
    );
    let layer = Layer::new().file("a/b", b"").file("a", b"").finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "a",
        "both as a directory and as a regular file",
    );
    let layer = Layer::new()
        .symlink("s", "t")
        .raw(E::new("s", b'6'))
        .finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "s",
        "both as a symlink and as a fifo",
    );
    // The same path twice with the same type is fine: the later wins.
    let layer = Layer::new().file("a", b"1").file("a", b"2").finish();
    assert_eq!(
        member(&members(&flatten(&[layer]).unwrap().0), "./a").7,
        b"2"
    );
}

#[test]
fn sockets_unknown_types_sparse_and_global_headers() {
    let socket = Layer::new().raw(E::new("run/sock", b's')).finish();
    assert_refused(
        &[socket],
        "layer 1 (test)",
        "run/sock",
        "unsupported tar entry type 's' (socket)",
    );
    let unknown = Layer::new().raw(E::new("weird", b'Q')).finish();
    assert_refused(
        &[unknown],
        "layer 1 (test)",
        "weird",
        "unsupported tar entry type 'Q'",
    );
    let sparse = Layer::new()
        .raw(E {
            pax: vec![("GNU.sparse.map", b"0,0".to_vec())],
            ..E::new("s", b'0')
        })
        .finish();
    assert_refused(
        &[sparse],
        "layer 1 (test)",
        "s",
        "sparse entries are not supported",
    );
    let global = Layer::new()
        .raw(E {
            pax: vec![],
            data: b"15 mtime=12345\n",
            ..E::new("pax_global_header", b'g')
        })
        .finish();
    assert_refused(
        &[global],
        "layer 1 (test)",
        "pax_global_header",
        "a PAX global header sets \"mtime\"",
    );
    // git archive's comment-only global header is accepted.
    let git = Layer::new()
        .raw(E {
            data: b"15 comment=abc\n",
            ..E::new("pax_global_header", b'g')
        })
        .file("a", b"")
        .finish();
    assert_eq!(names(&flatten(&[git]).unwrap().0), ["./", "./a"]);
}

#[test]
fn root_replaced_by_a_non_directory() {
    let layer = Layer::new().symlink("./", "/elsewhere").finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "./",
        "the root directory cannot be replaced by a symlink",
    );
}

#[test]
fn non_utf8_and_bad_symlinks() {
    let mut e = E::new("x", b'0');
    e.name = b"bad\xffname";
    let layer = Layer::new().raw(e).finish();
    assert_refused(
        &[layer],
        "layer 1 (test)",
        "bad\u{fffd}name",
        "not valid UTF-8",
    );
    let mut e = E::new("l", b'2');
    e.link = b"";
    let layer = Layer::new().raw(e).finish();
    assert_refused(&[layer], "layer 1 (test)", "l", "symlink target is empty");
    let bad_xattr = Layer::new()
        .raw(E {
            pax: vec![("LIBARCHIVE.xattr.user.x", b"!!!".to_vec())],
            ..E::new("f", b'0')
        })
        .finish();
    assert_refused(&[bad_xattr], "layer 1 (test)", "f", "value is not base64");
}

/// A verifying reader (like icos-oci's) reports a digest mismatch only at the end of the stream:
/// the layer must be read to its end and the error must surface.
struct FailsAtEnd<'a> {
    data: &'a [u8],
}

impl Read for FailsAtEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "digest mismatch: sha256:bad",
            ));
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn digest_failure_at_the_end_of_the_stream_fails_the_build() {
    let mut layer = Layer::new().file("a", b"a").finish();
    layer.extend_from_slice(&[0u8; 8192]); // padding after the end-of-archive marker, as tar writes
    let spool = tempfile::tempdir().unwrap();
    let mut builder = RootfsBuilder::new(spool.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    let err = builder
        .apply_layer("layer 1 (sha256:abc) of oci:x", FailsAtEnd { data: &layer })
        .unwrap_err();
    assert!(matches!(err, RootfsError::LayerRead { .. }));
    assert_eq!(
        err.to_string(),
        "layer 1 (sha256:abc) of oci:x: cannot read the end of the layer: digest mismatch: sha256:bad"
    );
}

#[test]
fn problems_are_typed() {
    let layer = Layer::new().file("../x", b"").finish();
    let spool = tempfile::tempdir().unwrap();
    let mut builder = RootfsBuilder::new(spool.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    match builder.apply_layer("l", &layer[..]) {
        Err(RootfsError::Entry {
            problem: EntryProblem::EscapesRoot,
            entry,
            ..
        }) => assert_eq!(entry, "../x"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Linux ids are 32-bit: 2^32 is refused, never truncated (to 0, root) by a later tool.
#[test]
fn ids_past_32_bits_are_refused() {
    for (key, value) in [
        ("uid", "4294967296"),
        ("gid", "4294967296"),
        ("uid", "18446744073709551615"),
    ] {
        let layer = Layer::new()
            .raw(E {
                mode: 0o4755,
                pax: vec![(key, value.as_bytes().to_vec())],
                ..E::new("usr/bin/su", b'0')
            })
            .finish();
        assert_refused(
            &[layer],
            "layer 1 (test)",
            "usr/bin/su",
            &format!("{key} {value} does not fit in 32 bits"),
        );
    }
    let fits = Layer::new()
        .raw(E {
            pax: vec![("uid", b"4294967295".to_vec())],
            ..E::new("usr/bin/su", b'0')
        })
        .finish();
    let (_, manifest) = flatten(&[fits]).unwrap();
    let json = serde_json::to_string(&manifest).unwrap();
    assert!(json.contains("4294967295"), "{json}");
}

/// What follows a layer's end-of-archive marker is read (a verifying reader needs every byte),
/// but only so far: a compressed layer could otherwise decompress forever.
#[test]
fn trailing_data_after_the_end_of_archive_is_bounded() {
    let mut layer = Layer::new().file("a", b"x").finish();
    layer.extend(vec![0u8; 10240]);
    flatten(&[layer.clone()]).unwrap();
    layer.extend(vec![7u8; 1 << 20]);
    let err = flatten(&[layer]).unwrap_err().to_string();
    assert!(
        err.contains("cannot read the end of the layer: more than 1048576 bytes follow the end-of-archive marker"),
        "{err}"
    );
}

/// A layer mapped in place is verified on another thread while the build goes on: a failed
/// verification is the error, whatever the parse made of the bytes and whatever failed after it (a
/// corrupt layer is reported as corrupt, not as whatever its bytes happen to look like), and
/// nothing is written.
#[test]
fn a_mapped_layer_that_fails_verification_is_refused_as_such() {
    let good = Layer::new().file("a", b"a").finish();
    let mut broken_header = good.clone();
    broken_header[0] ^= 0x20; // the name changes: the header checksum no longer matches
    let cases = [
        ("parses", good.clone(), None),
        ("does not parse", broken_header.clone(), None),
        ("parses, the next layer does not", good, Some(broken_header)),
    ];
    for (what, layer, next) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mapped = MappedFile::new({
            let file = tempfile::tempfile_in(dir.path()).unwrap();
            io::Write::write_all(&mut &file, &layer).unwrap();
            file
        })
        .unwrap();
        let bytes = mapped.slice(0..layer.len() as u64).unwrap();
        let (tar, manifest) = (dir.path().join("rootfs.tar"), dir.path().join("m.json"));
        let mut builder =
            RootfsBuilder::new(dir.path(), EPOCH.to_string().parse().unwrap()).unwrap();
        let build = || -> Result<(), RootfsError> {
            builder.apply_mapped_layer("layer 1 (sha256:abc) of oci:x", bytes, || {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "content does not match the digest",
                ))
            })?;
            if let Some(next) = next {
                builder.apply_layer("layer 2", &next[..])?;
            }
            builder.write(&tar, &manifest, None).map(drop)
        };
        let err = build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer 1 (sha256:abc) of oci:x: cannot verify the layer: content does not match the digest",
            "a corrupt layer that {what}"
        );
        assert!(
            !tar.exists() && !manifest.exists(),
            "a corrupt layer that {what}: output written"
        );
    }
}

/// Layers mapped in place are verified in layer order beside the build: the first corrupt layer is
/// the error, and nothing is written.
#[test]
fn the_first_corrupt_layer_is_the_error() {
    for corrupt in [vec![2, 4], vec![5], vec![1, 2, 3, 4, 5]] {
        let dir = tempfile::tempdir().unwrap();
        let (tar, manifest) = (dir.path().join("rootfs.tar"), dir.path().join("m.json"));
        let mut builder =
            RootfsBuilder::new(dir.path(), EPOCH.to_string().parse().unwrap()).unwrap();
        let build = || -> Result<(), RootfsError> {
            for i in 1..=5u64 {
                let layer = Layer::new().file(&format!("f{i}"), b"x").finish();
                let file = tempfile::tempfile_in(dir.path()).unwrap();
                io::Write::write_all(&mut &file, &layer).unwrap();
                let bytes = MappedFile::new(file).unwrap().whole();
                let fails = corrupt.contains(&i);
                builder.apply_mapped_layer(&format!("layer {i}"), bytes, move || {
                    if fails {
                        return Err(io::Error::other(format!("digest mismatch {i}")));
                    }
                    Ok(())
                })?;
            }
            builder.write(&tar, &manifest, None).map(drop)
        };
        let first = corrupt[0];
        assert_eq!(
            build().unwrap_err().to_string(),
            format!("layer {first}: cannot verify the layer: digest mismatch {first}"),
            "corrupt layers {corrupt:?}"
        );
        assert!(!tar.exists() && !manifest.exists(), "output written");
    }
}

/// The tripwire for inputs written during a build: a layer file changed between its parse and the
/// tar's writing fails the build, and no output appears.
#[test]
fn a_mapped_layer_written_during_the_build_fails_it() {
    let layer = Layer::new().file("a", b"aaaa").finish();
    let inputs = tempfile::tempdir().unwrap();
    let path = inputs.path().join("layer.tar");
    std::fs::write(&path, &layer).unwrap();
    let mapped = MappedFile::new(std::fs::File::open(&path).unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut builder = RootfsBuilder::new(out.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    builder
        .apply_mapped_layer(
            "layer 1 (test)",
            mapped.slice(0..layer.len() as u64).unwrap(),
            || Ok(()),
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20)); // past a coarse mtime clock
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0u8; 512])
        .unwrap();
    let err = builder
        .write(
            &out.path().join("rootfs.tar"),
            &out.path().join("rootfs.manifest.json"),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("layer 1 (test): cannot trust the layer read in place: the file changed while it was being read"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "outputs left behind"
    );
}
