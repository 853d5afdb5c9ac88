//! The image description applied on top of the layers.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use icos_common::Digest;
use icos_rootfs::{BuildReport, ImageSpec, Manifest, RootfsBuilder};

struct Built {
    tar: Vec<u8>,
    report: BuildReport,
    /// Read back from the manifest file.
    manifest: Manifest,
}

fn build(
    dir: &Path,
    layers: &[Vec<u8>],
    spec_text: &str,
    source_root: Option<&Path>,
) -> Result<Built, String> {
    let spec_path = dir.join("image.toml");
    std::fs::write(&spec_path, spec_text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = || -> Result<BuildReport, icos_rootfs::RootfsError> {
        let roots: Vec<std::path::PathBuf> =
            source_root.map(Path::to_path_buf).into_iter().collect();
        let spec = ImageSpec::load(&spec_path, &roots)?;
        let mut builder = RootfsBuilder::new(out.path(), EPOCH.to_string().parse().unwrap())?;
        for (i, layer) in layers.iter().enumerate() {
            builder.apply_layer(&format!("layer {}", i + 1), &layer[..])?;
        }
        builder.apply_spec(&spec)?;
        builder.write(
            &out.path().join("rootfs.tar"),
            &out.path().join("m.json"),
            None,
        )
    };
    match run() {
        Ok(report) => Ok(Built {
            tar: std::fs::read(out.path().join("rootfs.tar")).unwrap(),
            report,
            manifest: serde_json::from_slice(&std::fs::read(out.path().join("m.json")).unwrap())
                .unwrap(),
        }),
        Err(e) => {
            assert_eq!(
                std::fs::read_dir(out.path()).unwrap().count(),
                0,
                "failed build left files"
            );
            Err(e.to_string())
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn base() -> Vec<u8> {
    Layer::new()
        .dir("etc/")
        .file("etc/machine-id", b"0123")
        .file("etc/hostname", b"debian\n")
        .hardlink("etc/hostname.bak", "etc/hostname")
        .dir("var/cache/apt/")
        .file("var/cache/apt/pkgcache.bin", b"cache")
        .dir("var/cache/apt/archives/")
        .file("var/cache/apt/archives/x.deb", b"deb")
        .dir("var/log/")
        .file("var/log/dpkg.log", b"log")
        .dir("var/log/apt/")
        .file("var/log/apt/history.log", b"h")
        .dir("srv/full/")
        .file("srv/full/x", b"")
        .dir("srv/empty/")
        .symlink("lib", "usr/lib")
        .finish()
}

#[test]
fn applies_everything_in_the_documented_order() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("files")).unwrap();
    std::fs::write(src.path().join("files/motd"), b"welcome\n").unwrap();
    let extra_gz = gzip(
        &Layer::new()
            .file("opt/app/bin", b"app")
            .file("etc/.wh.hostname.bak", b"")
            .finish(),
    );
    std::fs::write(src.path().join("extra.tar.gz"), &extra_gz).unwrap();
    let extra_zst =
        zstd::encode_all(&Layer::new().file("opt/app/conf", b"conf").finish()[..], 3).unwrap();
    std::fs::write(src.path().join("more.tar.zst"), &extra_zst).unwrap();
    let plain = Layer::new()
        .file(
            "var/log/from-layer",
            b"removed by the glob, since remove comes after layers",
        )
        .finish();
    std::fs::write(src.path().join("plain.tar"), &plain).unwrap();

    let spec = r#"
remove = ["/var/cache/apt/**", "/var/log/*", "/etc/machine-id", "/nothing/here/*"]
[[layer]]
source = "extra.tar.gz"
[[layer]]
source = "more.tar.zst"
[[layer]]
source = "plain.tar"
[[dir]]
path = "/var/log/journal"
mode = "2755"
gid = 101
[[file]]
path = "/etc/hostname"
content = "icos\n"
[[file]]
path = "/etc/motd"
source = "files/motd"
mode = "0444"
[[file]]
path = "/srv/empty"
content = "a file over an empty directory is fine"
[[file]]
path = "/usr/bin/ping"
content = "ping"
mode = "4755"
xattrs = { "security.capability" = "0100000200200000000000000000000000000000" }
[[symlink]]
path = "/etc/localtime"
target = "/usr/share/zoneinfo/UTC"
[[symlink]]
path = "/opt/app/conf"
target = "/etc/app.conf"
"#;
    let built = build(src.path(), &[base()], spec, None).unwrap();
    let all = members(&built.tar);
    let listed = names(&built.tar);
    assert_eq!(
        listed,
        [
            "./",
            "./etc/",
            "./etc/hostname",
            "./etc/localtime",
            "./etc/motd",
            "./lib",
            "./opt/",
            "./opt/app/",
            "./opt/app/bin",
            "./opt/app/conf",
            "./srv/",
            "./srv/empty",
            "./srv/full/",
            "./srv/full/x",
            "./usr/",
            "./usr/bin/",
            "./usr/bin/ping",
            "./var/",
            "./var/cache/",
            "./var/cache/apt/",
            "./var/log/",
            "./var/log/journal/",
        ]
    );
    let hostname = member(&all, "./etc/hostname");
    assert_eq!((hostname.7.as_slice(), hostname.5), (&b"icos\n"[..], EPOCH));
    let journal = member(&all, "./var/log/journal/");
    assert_eq!((journal.2, journal.4, journal.5), (0o2755, 101, EPOCH));
    assert_eq!(member(&all, "./etc/motd").2, 0o444);
    assert_eq!(member(&all, "./opt/app/conf").6, "/etc/app.conf");

    let m = &built.report;
    let spec_input = m.inputs.spec.as_ref().unwrap();
    assert_eq!(spec_input.sha256, Digest::of(spec.as_bytes()));
    assert!(spec_input.path.ends_with("image.toml"));
    assert_eq!(m.inputs.files.len(), 1);
    assert_eq!(
        (
            m.inputs.files[0].path.as_str(),
            m.inputs.files[0].sha256,
            m.inputs.files[0].size
        ),
        ("files/motd", Digest::of(b"welcome\n"), 8)
    );
    let layers: Vec<_> = m
        .inputs
        .extra_layers
        .iter()
        .map(|l| (l.path.as_str(), l.sha256, l.size))
        .collect();
    assert_eq!(
        layers,
        [
            ("extra.tar.gz", Digest::of(&extra_gz), extra_gz.len() as u64),
            (
                "more.tar.zst",
                Digest::of(&extra_zst),
                extra_zst.len() as u64
            ),
            ("plain.tar", Digest::of(&plain), plain.len() as u64),
        ]
    );
    assert_eq!(built.report.unmatched_removals, ["/nothing/here/*"]);
    let ping = built
        .manifest
        .entries
        .iter()
        .find(|e| e.path == "/usr/bin/ping")
        .unwrap();
    assert_eq!(
        ping.xattrs["security.capability"],
        "0100000200200000000000000000000000000000"
    );
    assert_eq!(ping.mode, "4755");
}

#[test]
fn hardlinked_names_keep_the_old_content_when_the_spec_replaces_one() {
    let src = tempfile::tempdir().unwrap();
    let built = build(
        src.path(),
        &[base()],
        "[[file]]\npath = \"/etc/hostname\"\ncontent = \"new\"\n",
        None,
    )
    .unwrap();
    let all = members(&built.tar);
    assert_eq!(member(&all, "./etc/hostname").7, b"new");
    let bak = member(&all, "./etc/hostname.bak");
    assert_eq!((bak.1, bak.7.as_slice()), ('0', &b"debian\n"[..]));
}

#[test]
fn spec_alone_builds_a_tree_and_source_root_moves_sources() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("esp")).unwrap();
    std::fs::write(root.path().join("esp/loader.conf"), b"timeout 0\n").unwrap();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = "[[file]]\npath = \"/loader/loader.conf\"\nsource = \"esp/loader.conf\"\n";
    let built = build(spec_dir.path(), &[], spec, Some(root.path())).unwrap();
    assert_eq!(
        names(&built.tar),
        ["./", "./loader/", "./loader/loader.conf"]
    );
    assert!(built.report.inputs.base.is_none());
    // Without --source-root the path resolves beside the spec, where it does not exist.
    let err = build(spec_dir.path(), &[], spec, None).err().unwrap();
    assert!(
        err.contains(
            "image.toml: [[file]] #1 (/loader/loader.conf): source \"esp/loader.conf\": cannot open"
        ),
        "{err}"
    );
    assert!(err.contains("esp/loader.conf"), "{err}");
}

#[test]
fn refusals_name_the_spec_and_the_entry() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("adir")).unwrap();
    let cases = [
        (
            "[[file]]\npath = \"/srv/full\"\ncontent = \"x\"",
            "[[file]] #1 (/srv/full): /srv/full is a non-empty directory",
        ),
        (
            "[[symlink]]\npath = \"/srv/full\"\ntarget = \"x\"",
            "[[symlink]] #1 (/srv/full): /srv/full is a non-empty directory",
        ),
        (
            "[[file]]\npath = \"/lib/x.so\"\ncontent = \"x\"",
            "[[file]] #1 (/lib/x.so): its parent /lib is a symlink",
        ),
        (
            "[[dir]]\npath = \"/etc/hostname/d\"",
            "[[dir]] #1 (/etc/hostname/d): its parent /etc/hostname is a regular file",
        ),
        (
            "[[file]]\npath = \"/a\"\nsource = \"adir\"",
            "[[file]] #1 (/a): source \"adir\": ",
        ),
        (
            "[[layer]]\nsource = \"missing.tar\"",
            "[[layer]] source \"missing.tar\": cannot open",
        ),
        ("[[dir]]\npath = \"/x\"\nowner = 3", "unknown field `owner`"),
    ];
    for (text, expected) in cases {
        let err = build(src.path(), &[base()], text, None)
            .err()
            .unwrap_or_else(|| panic!("accepted {text}"));
        assert!(err.contains("image.toml: "), "{err}");
        assert!(
            err.contains(expected),
            "spec {text:?}: {err:?} lacks {expected:?}"
        );
    }
}

#[test]
fn hostile_extra_layers_are_named() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("bad.tar"),
        Layer::new().file("../../x", b"").finish(),
    )
    .unwrap();
    let err = build(src.path(), &[], "[[layer]]\nsource = \"bad.tar\"", None)
        .err()
        .unwrap();
    assert!(err.starts_with("extra layer \"bad.tar\" of "), "{err}");
    assert!(
        err.contains("image.toml: entry \"../../x\": the path climbs above"),
        "{err}"
    );
    // A corrupt compressed layer
    std::fs::write(src.path().join("bad.tar.gz"), b"not gzip at all").unwrap();
    let err = build(src.path(), &[], "[[layer]]\nsource = \"bad.tar.gz\"", None)
        .err()
        .unwrap();
    assert!(err.starts_with("extra layer \"bad.tar.gz\" of "), "{err}");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// A spec names files under its source roots; nothing it says reaches another host file.
#[test]
fn sources_cannot_reach_host_files() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::write(s.join("motd"), b"hello\n").unwrap();
    std::fs::write(s.join("layer.tar"), Layer::new().file("a", b"a").finish()).unwrap();
    std::os::unix::fs::symlink("motd", s.join("inside-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("/etc", s.join("etc-dir")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", s.join("zero")).unwrap();
    std::os::unix::fs::symlink(s.join("layer.tar"), s.join("layer-link.tar")).unwrap();
    mkfifo(&s.join("fifo"));
    std::fs::create_dir(s.join("adir")).unwrap();

    // A link that stays inside the root is followed (Bazel stages inputs as links).
    let spec = "[[layer]]\nsource = \"layer-link.tar\"\n[[file]]\npath = \"/motd\"\nsource = \"inside-link\"\n";
    let built = build(s, &[], spec, None).unwrap();
    assert_eq!(names(&built.tar), ["./", "./a", "./motd"]);

    let file = |source: &str| format!("[[file]]\npath = \"/x\"\nsource = \"{source}\"\n");
    let layer = |source: &str| format!("[[layer]]\nsource = \"{source}\"\n");
    let escaped = "outside the source roots";
    let cases = [
        (
            file("../../../../../../etc/passwd"),
            "[[file]] #1 (/x): source \"../../../../../../etc/passwd\" has a '..' component"
                .to_string(),
        ),
        (file("sub/../../motd"), "has a '..' component".into()),
        (
            layer("../../../../etc/passwd"),
            "[[layer]] #1: source \"../../../../etc/passwd\" has a '..' component".into(),
        ),
        (file("/etc/passwd"), "must be a relative path".into()),
        (layer("/etc/passwd"), "must be a relative path".into()),
        (
            file("passwd-link"),
            format!(
                "source \"passwd-link\": {} resolves to /etc/passwd, {escaped}",
                s.join("passwd-link").display()
            ),
        ),
        (
            file("etc-dir/passwd"),
            format!("resolves to /etc/passwd, {escaped}"),
        ),
        (
            layer("passwd-link"),
            format!(
                "[[layer]] source \"passwd-link\": {} resolves to /etc/passwd, {escaped}",
                s.join("passwd-link").display()
            ),
        ),
        (file("zero"), format!("resolves to /dev/zero, {escaped}")),
        (layer("zero"), format!("resolves to /dev/zero, {escaped}")),
        // Never blocks in open() on a FIFO nobody writes to.
        (
            file("fifo"),
            format!(
                "source \"fifo\": {} is a FIFO (named pipe), not a regular file",
                s.join("fifo").display()
            ),
        ),
        (
            layer("fifo"),
            format!(
                "[[layer]] source \"fifo\": {} is a FIFO (named pipe), not a regular file",
                s.join("fifo").display()
            ),
        ),
        (
            file("adir"),
            format!(
                "source \"adir\": {} is a directory, not a regular file",
                s.join("adir").display()
            ),
        ),
        (layer("adir"), "is a directory, not a regular file".into()),
    ];
    for (text, expected) in cases {
        let err = build(s, &[], &text, None)
            .err()
            .unwrap_or_else(|| panic!("accepted {text}"));
        assert!(err.contains("image.toml: "), "{err}");
        assert!(
            err.contains(&expected),
            "spec {text:?}: {err:?} lacks {expected:?}"
        );
    }
}

/// A file of zeros costs no disk in the rootfs tar: its all-zero 4 KiB blocks stay holes, and GNU
/// tar reads the same bytes back.
#[test]
fn zeros_are_written_as_holes() {
    use std::os::unix::fs::MetadataExt;
    let src = tempfile::tempdir().unwrap();
    let size: u64 = 256 << 20;
    std::fs::File::create(src.path().join("zeros"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let spec_path = src.path().join("image.toml");
    std::fs::write(
        &spec_path,
        "[[file]]\npath = \"/zeros\"\nsource = \"zeros\"\n[[file]]\npath = \"/z\"\ncontent = \"after\"\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("rootfs.tar");
    let spec = ImageSpec::load(&spec_path, &[]).unwrap();
    let mut builder = RootfsBuilder::new(out.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    builder.apply_spec(&spec).unwrap();
    let report = builder
        .write(&tar, &out.path().join("m.json"), None)
        .unwrap();
    let meta = std::fs::metadata(&tar).unwrap();
    assert_eq!(meta.len(), report.output.size);
    assert!(meta.len() > size);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes allocated for a {}-byte tar",
        meta.blocks() * 512,
        meta.len()
    );
    // The bytes read back are the ones hashed.
    assert_eq!(
        Digest::of(&std::fs::read(&tar).unwrap()),
        report.output.sha256
    );
    let listing = std::process::Command::new("tar")
        .args(["-xOf"])
        .arg(&tar)
        .arg("./z")
        .output()
        .unwrap();
    assert_eq!(listing.stdout, b"after");
    let sum = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("tar -xOf '{}' ./zeros | wc -c", tar.display()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sum.stdout).trim(),
        size.to_string()
    );
}
