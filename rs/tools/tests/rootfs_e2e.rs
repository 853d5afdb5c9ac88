//! End-to-end: real OCI layouts (gzip, zstd and plain layers) and a real `docker save` archive,
//! flattened by the icos-rootfs binary; outputs compared byte for byte across runs that differ in
//! umask, TZ, locale, working directory and the on-disk order of the inputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use icos_common::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_icos-rootfs");
const EPOCH: &str = "1700000000";

#[derive(Clone, Copy)]
enum Compression {
    Gzip,
    Zstd,
    Plain,
}

/// A layer tar built with the tar crate (GNU tar-like headers, as real image builders write).
struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl LayerBuilder {
    fn new() -> Self {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_650_000_000);
        h.set_size(size);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0, 0);
        self.tar.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(mut self, path: &str, mode: u32, uid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, data.len() as u64);
        self.tar.append_data(&mut h, path, data).unwrap();
        self
    }

    fn xattr_file(mut self, path: &str, name: &str, value: &[u8], data: &[u8]) -> Self {
        let key = format!("SCHILY.xattr.{name}");
        self.tar
            .append_pax_extensions([(key.as_str(), value)])
            .unwrap();
        self.file(path, 0o755, 0, data)
    }

    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0, 0);
        self.tar.append_link(&mut h, path, target).unwrap();
        self
    }

    fn special(
        mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Self {
        let mut h = Self::header(kind, mode, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.tar.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.tar.into_inner().unwrap()
    }
}

/// Three layers exercising whiteouts, an opaque directory, hardlinks, symlinks, setuid, an xattr,
/// a fifo and a device.
fn three_layers() -> Vec<Vec<u8>> {
    use tar::EntryType::*;
    let l1 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, 0, b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/motd", 0o644, 0, b"base motd\n")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/busybox", 0o755, 0, &vec![0x7f; 70_000])
        .link(Link, "usr/bin/sh", "usr/bin/busybox")
        .link(Symlink, "bin", "usr/bin")
        .dir("var/lib/old", 0o700)
        .file("var/lib/old/state", 0o600, 0, b"state")
        .dir("opt/cfg", 0o755)
        .file("opt/cfg/a.conf", 0o644, 0, b"a")
        .file("opt/cfg/b.conf", 0o644, 0, b"b")
        .finish();
    let l2 = LayerBuilder::new()
        .file("etc/.wh.motd", 0o644, 0, b"")
        .file("var/lib/.wh.old", 0o644, 0, b"")
        .dir("opt/cfg", 0o750)
        .file("opt/cfg/.wh..wh..opq", 0o644, 0, b"")
        .file("opt/cfg/c.conf", 0o640, 1000, b"c")
        .xattr_file(
            "usr/bin/ping",
            "security.capability",
            &[1, 0, 0, 2, 0, 0x20, 0, 0],
            b"ping",
        )
        .file("usr/bin/su", 0o4755, 0, b"su")
        .finish();
    let l3 = LayerBuilder::new()
        .dir("dev", 0o755)
        .special(Char, "dev/null", 0o666, 1, 3)
        .special(Fifo, "run/initctl", 0o600, 0, 0)
        .file(
            "usr/bin/busybox",
            0o755,
            0,
            b"replaced: the hardlink keeps the old content",
        )
        .file("home/user/.profile", 0o644, 1000, b"export PS1\n")
        .finish();
    vec![l1, l2, l3]
}

fn compress(data: &[u8], c: Compression) -> (Vec<u8>, &'static str) {
    match c {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            (
                enc.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            zstd::encode_all(data, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        Compression::Plain => (data.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
    }
}

/// Writes an OCI image layout; returns the manifest digest. `reverse` writes the files in the
/// opposite order (different inode and directory order on disk).
fn write_layout(dir: &Path, layers: &[(Vec<u8>, Compression)], reverse: bool) -> Digest {
    let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (data, c) in layers {
        let (blob, media_type) = compress(data, *c);
        let digest = Digest::of(&blob);
        descriptors.push(serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": blob.len()}));
        diff_ids.push(Digest::of(data).to_string());
        blobs.push((digest, blob));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let manifest_digest = Digest::of(&manifest);
    blobs.push((config_digest, config));
    blobs.push((manifest_digest, manifest.clone()));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest.to_string(), "size": manifest.len()}],
    }))
    .unwrap();
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        (
            dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (dir.join("index.json"), index),
    ];
    for (digest, blob) in blobs {
        files.push((dir.join("blobs/sha256").join(digest.hex()), blob));
    }
    if reverse {
        files.reverse();
    }
    for (path, bytes) in files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    manifest_digest
}

struct Env<'a> {
    cwd: &'a Path,
    umask: &'a str,
    tz: &'a str,
    locale: &'a str,
    epoch_from_env: bool,
}

fn run(env: &Env<'_>, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {} && exec \"$0\" \"$@\"", env.umask))
        .arg(BIN);
    cmd.args(args)
        .current_dir(env.cwd)
        .env("TZ", env.tz)
        .env("LC_ALL", env.locale)
        .env("LANG", env.locale);
    if env.epoch_from_env {
        cmd.env("SOURCE_DATE_EPOCH", EPOCH);
    } else {
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .args(["--source-date-epoch", EPOCH]);
    }
    cmd.output().unwrap()
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "icos-rootfs failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

fn gnu_tar_list(path: &Path) -> String {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(path)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("GNU tar is needed for this test: apt-get install tar");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "tar -tvf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SPEC: &str = r#"
remove = ["/var/lib/**", "/no/such/*"]
[[layer]]
source = "extra.tar.zst"
[[dir]]
path = "/var/lib/app"
mode = "0750"
uid = 100
gid = 100
[[file]]
path = "/etc/hostname"
content = "icos\n"
[[file]]
path = "/etc/motd"
source = "files/motd"
mode = "0444"
[[symlink]]
path = "/etc/localtime"
target = "/usr/share/zoneinfo/UTC"
"#;

/// A build directory: the layout, the spec and its inputs, under `work`.
fn prepare(work: &Path, reverse: bool) -> String {
    let layers: Vec<_> = three_layers()
        .into_iter()
        .zip([Compression::Gzip, Compression::Zstd, Compression::Plain])
        .collect();
    let digest = write_layout(&work.join("layout"), &layers, reverse);
    let extra = LayerBuilder::new()
        .file("opt/extra/tool", 0o755, 0, b"tool")
        .finish();
    let mut inputs = vec![
        ("files/motd", b"welcome to icos\n".to_vec()),
        ("extra.tar.zst", zstd::encode_all(&extra[..], 3).unwrap()),
        ("image.toml", SPEC.as_bytes().to_vec()),
    ];
    if reverse {
        inputs.reverse();
    }
    for (name, bytes) in inputs {
        let path = work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir_all(work.join("out")).unwrap();
    format!("oci:layout@{digest}")
}

#[test]
fn oci_layout_flattens_identically_under_different_environments() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::Builder::new()
        .prefix("other-place")
        .tempdir()
        .unwrap();
    let b_work = b.path().join("deeper/dir");
    let ref_a = prepare(a.path(), false);
    let ref_b = prepare(&b_work, true);
    assert_eq!(ref_a, ref_b, "same relative reference in both places");
    let args = [
        "--base",
        &ref_a,
        "--spec",
        "image.toml",
        "--out",
        "out/rootfs.tar",
        "--manifest",
        "out/rootfs.manifest.json",
    ];
    let first = ok(run(
        &Env {
            cwd: a.path(),
            umask: "022",
            tz: "UTC",
            locale: "C",
            epoch_from_env: false,
        },
        &args,
    ));
    let second = ok(run(
        &Env {
            cwd: &b_work,
            umask: "077",
            tz: "Pacific/Kiritimati",
            locale: "de_DE.UTF-8",
            epoch_from_env: true,
        },
        &args,
    ));
    let warning = String::from_utf8_lossy(&first.stderr);
    assert!(
        warning.contains("image.toml: remove pattern \"/no/such/*\" matched nothing"),
        "{warning}"
    );
    assert_eq!(first.stderr, second.stderr);

    let tar_a = std::fs::read(a.path().join("out/rootfs.tar")).unwrap();
    let tar_b = std::fs::read(b_work.join("out/rootfs.tar")).unwrap();
    assert_eq!(
        tar_a, tar_b,
        "rootfs tar differs between the two environments"
    );
    let manifest_a = std::fs::read(a.path().join("out/rootfs.manifest.json")).unwrap();
    let manifest_b = std::fs::read(b_work.join("out/rootfs.manifest.json")).unwrap();
    assert_eq!(manifest_a, manifest_b);
    // Nothing but the two outputs in the output directory (the spool is anonymous).
    let mut outs: Vec<_> = std::fs::read_dir(a.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outs.sort();
    assert_eq!(outs, ["rootfs.manifest.json", "rootfs.tar"]);
    // Output mode does not follow the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b_work.join("out/rootfs.tar"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);

    let manifest: serde_json::Value = serde_json::from_slice(&manifest_a).unwrap();
    assert_eq!(manifest["schema"], "icos.rootfs-manifest/v1");
    assert_eq!(manifest["output"]["sha256"], Digest::of(&tar_a).to_string());
    assert_eq!(manifest["output"]["size"], tar_a.len());
    assert_eq!(manifest["inputs"]["base"]["reference"], ref_a);
    assert_eq!(
        manifest["inputs"]["base"]["layers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        manifest["inputs"]["spec"]["sha256"],
        Digest::of(SPEC.as_bytes()).to_string()
    );
    assert_eq!(
        manifest["inputs"]["files"][0]["sha256"],
        Digest::of(b"welcome to icos\n").to_string()
    );
    assert_eq!(
        manifest["inputs"]["extra_layers"][0]["path"],
        "extra.tar.zst"
    );

    let listing = gnu_tar_list(&a.path().join("out/rootfs.tar"));
    let rows: Vec<String> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode owner date time name [-> target | link to target]; the size column is dropped
            format!("{} {} {} {} {}", f[0], f[1], f[3], f[4], f[5..].join(" "))
        })
        .collect();
    let expected = [
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./",
        "lrwxrwxrwx 0/0 2022-04-15 05:20:00 ./bin -> usr/bin",
        "drwxr-xr-x 0/0 2022-04-15 05:20:00 ./dev/",
        "crw-rw-rw- 0/0 2022-04-15 05:20:00 ./dev/null",
        "drwxr-xr-x 0/0 2022-04-15 05:20:00 ./etc/",
        "-rw-r--r-- 0/0 2023-11-14 22:13:20 ./etc/hostname",
        "lrwxrwxrwx 0/0 2023-11-14 22:13:20 ./etc/localtime -> /usr/share/zoneinfo/UTC",
        "-r--r--r-- 0/0 2023-11-14 22:13:20 ./etc/motd",
        "-rw-r--r-- 0/0 2022-04-15 05:20:00 ./etc/passwd",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./home/",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./home/user/",
        "-rw-r--r-- 1000/1000 2022-04-15 05:20:00 ./home/user/.profile",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./opt/",
        "drwxr-x--- 0/0 2022-04-15 05:20:00 ./opt/cfg/",
        "-rw-r----- 1000/1000 2022-04-15 05:20:00 ./opt/cfg/c.conf",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./opt/extra/",
        "-rwxr-xr-x 0/0 2022-04-15 05:20:00 ./opt/extra/tool",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./run/",
        "prw------- 0/0 2022-04-15 05:20:00 ./run/initctl",
        "drwxr-xr-x 0/0 2022-04-15 05:20:00 ./usr/",
        "drwxr-xr-x 0/0 2022-04-15 05:20:00 ./usr/bin/",
        "-rwxr-xr-x 0/0 2022-04-15 05:20:00 ./usr/bin/busybox",
        "-rwxr-xr-x 0/0 2022-04-15 05:20:00 ./usr/bin/ping",
        "-rwxr-xr-x 0/0 2022-04-15 05:20:00 ./usr/bin/sh",
        "-rwsr-xr-x 0/0 2022-04-15 05:20:00 ./usr/bin/su",
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./var/", // implicit parents of var/lib/old
        "drwxr-xr-x 0/0 2023-11-14 22:13:20 ./var/lib/",
        "drwxr-x--- 100/100 2023-11-14 22:13:20 ./var/lib/app/",
    ];
    assert_eq!(rows, expected, "\n{listing}");
    let entries = manifest["entries"].as_array().unwrap();
    let entry = |p: &str| {
        entries
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p}"))
            .clone()
    };
    assert_eq!(
        entry("/usr/bin/ping")["xattrs"]["security.capability"],
        "0100000200200000"
    );
    // The hardlink kept the first busybox; the path busybox got the new content in layer 3.
    assert_eq!(
        entry("/usr/bin/sh")["sha256"],
        Digest::of(&vec![0x7f; 70_000]).to_string()
    );
    assert_eq!(entry("/usr/bin/busybox")["size"], 44);
    assert_eq!(entry("/dev/null")["major"], 1);
}

#[test]
fn hostile_layer_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.as_ustar_mut().unwrap().name[..13].copy_from_slice(b"../../evil.sh");
    h.set_size(4);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    evil.append(&h, &b"boom"[..]).unwrap();
    let evil = evil.into_inner().unwrap();
    let good = LayerBuilder::new().file("ok", 0o644, 0, b"ok").finish();
    let digest = write_layout(
        &work.path().join("layout"),
        &[(good, Compression::Gzip), (evil.clone(), Compression::Gzip)],
        false,
    );
    std::fs::create_dir(work.path().join("out")).unwrap();
    let reference = format!("oci:layout@{digest}");
    let env = Env {
        cwd: work.path(),
        umask: "022",
        tz: "UTC",
        locale: "C",
        epoch_from_env: false,
    };
    let out = run(
        &env,
        &[
            "--base",
            &reference,
            "--out",
            "out/rootfs.tar",
            "--manifest",
            "out/m.json",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let layer_digest = Digest::of(&compress(&evil, Compression::Gzip).0);
    assert!(
        stderr.contains(&format!(
            "layer 2 ({layer_digest}) of {reference}: entry \"../../evil.sh\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("climbs above the image root"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(work.path().join("out")).unwrap().count(),
        0,
        "failed run left files"
    );
    assert!(!work.path().join("../evil.sh").exists() && !Path::new("/evil.sh").exists());

    // A tampered blob fails the digest check, also cleanly.
    let blob = work
        .path()
        .join("layout/blobs/sha256")
        .join(layer_digest.hex());
    let good_again = compress(
        &LayerBuilder::new().file("x", 0o644, 0, b"x").finish(),
        Compression::Gzip,
    )
    .0;
    std::fs::write(&blob, good_again).unwrap();
    let out = run(
        &env,
        &[
            "--base",
            &reference,
            "--out",
            "out/rootfs.tar",
            "--manifest",
            "out/m.json",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&layer_digest.to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_dir(work.path().join("out")).unwrap().count(),
        0,
        "failed run left files"
    );
}

#[test]
fn source_date_epoch_is_required_and_validated() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("image.toml"), "[[dir]]\npath = \"/x\"\n").unwrap();
    let args = [
        "--spec",
        "image.toml",
        "--out",
        "rootfs.tar",
        "--manifest",
        "m.json",
    ];
    let missing = Command::new(BIN)
        .args(args)
        .current_dir(work.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("SOURCE_DATE_EPOCH is not set"));
    for bad in ["now", "-1", "1.5", "99999999999"] {
        let flag = format!("--source-date-epoch={bad}");
        let out = Command::new(BIN)
            .args(args)
            .arg(flag)
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SOURCE_DATE_EPOCH"),
            "{bad}"
        );
    }
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        1,
        "only the spec is there"
    );
    // And the spec alone builds (the ESP case).
    let out = Command::new(BIN)
        .args(args)
        .args(["--source-date-epoch", EPOCH])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = gnu_tar_list(&work.path().join("rootfs.tar"));
    assert_eq!(listing.lines().count(), 2, "{listing}");
}

#[test]
fn help_has_an_example() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("EXAMPLE:") && text.contains("--source-date-epoch"),
        "{text}"
    );
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

#[test]
fn docker_save_archive_matches_the_same_layer_as_oci_layout() {
    if Command::new("docker")
        .arg("info")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!("skipped: no docker daemon");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layer = &three_layers()[0];
    std::fs::write(work.path().join("layer.tar"), layer).unwrap();
    let tag = format!("icos-rootfs-e2e:{}", std::process::id());
    let import = docker(&[
        "import",
        work.path().join("layer.tar").to_str().unwrap(),
        &tag,
    ]);
    assert!(
        import.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let image_id = String::from_utf8(import.stdout).unwrap().trim().to_string();
    let save = docker(&[
        "save",
        "-o",
        work.path().join("saved.tar").to_str().unwrap(),
        &tag,
    ]);
    let _ = docker(&["rmi", "-f", &tag]);
    assert!(
        save.status.success(),
        "docker save: {}",
        String::from_utf8_lossy(&save.stderr)
    );

    let env = Env {
        cwd: work.path(),
        umask: "022",
        tz: "UTC",
        locale: "C",
        epoch_from_env: false,
    };
    let docker_ref = format!("docker-archive:saved.tar@{image_id}");
    for out in ["d1.tar", "d2.tar"] {
        ok(run(
            &env,
            &[
                "--base",
                &docker_ref,
                "--out",
                out,
                "--manifest",
                &format!("{out}.json"),
            ],
        ));
    }
    let d1 = std::fs::read(work.path().join("d1.tar")).unwrap();
    assert_eq!(d1, std::fs::read(work.path().join("d2.tar")).unwrap());
    // The same layer from an OCI layout flattens to the same bytes.
    let digest = write_layout(
        &work.path().join("layout"),
        &[(layer.clone(), Compression::Plain)],
        false,
    );
    ok(run(
        &env,
        &[
            "--base",
            &format!("oci:layout@{digest}"),
            "--out",
            "o.tar",
            "--manifest",
            "o.json",
        ],
    ));
    let o = std::fs::read(work.path().join("o.tar")).unwrap();
    assert_eq!(
        gnu_tar_list(&work.path().join("d1.tar")),
        gnu_tar_list(&work.path().join("o.tar"))
    );
    assert_eq!(d1, o);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("d1.tar.json")).unwrap()).unwrap();
    assert_eq!(manifest["inputs"]["base"]["config"], image_id);
}
