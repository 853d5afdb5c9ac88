//! icos-uki as Bazel runs it: determinism across working directories and umask, the root hash
//! taken from the verity parameters, `inspect`, and refusals that leave no output.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use icos_testsupport::{fake_kernel, noise, systemd_stub};

const BIN: &str = env!("CARGO_BIN_EXE_icos-uki");
const ROOT_HASH: &str = "5a1f1fd4b4a0b16b1e1d7fb0e6f3e5c6a2b9d8c7e6f5a4b3c2d1e0f9a8b7c6d5";

fn inputs(dir: &Path, stub: &Path) {
    fs::copy(stub, dir.join("linuxx64.efi.stub")).unwrap();
    fs::write(dir.join("vmlinuz"), fake_kernel(300_001, 3)).unwrap();
    fs::write(dir.join("initrd.img"), noise(100_001, 4)).unwrap();
    fs::write(dir.join("os-release"), "ID=icos\nVERSION_ID=1\n").unwrap();
    fs::write(
        dir.join("root.verity.json"),
        format!(
            "{{\"schema\": \"icos.verity-params/v1\", \"root_hash\": \"{ROOT_HASH}\", \"salt\": \"00\"}}\n"
        ),
    )
    .unwrap();
}

/// Runs icos-uki in `cwd` with relative paths under the given umask.
fn run(cwd: &Path, umask: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

/// The build arguments, input files under `prefix`.
fn build_args(prefix: &str) -> Vec<String> {
    let mut v = Vec::new();
    for (flag, file) in [
        ("--stub", "linuxx64.efi.stub"),
        ("--linux", "vmlinuz"),
        ("--initrd", "initrd.img"),
        ("--osrel", "os-release"),
        ("--cmdline-from-verity", "root.verity.json"),
    ] {
        v.push(flag.to_string());
        v.push(format!("{prefix}{file}"));
    }
    for a in ["--cmdline", "console=ttyS0 ro", "--uname", "6.1.0-50-amd64"] {
        v.push(a.to_string());
    }
    v
}

#[test]
fn same_bytes_from_any_directory_and_umask_with_the_root_hash_in_the_cmdline() {
    let Some(stub) = systemd_stub() else { return };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fs::create_dir(b.path().join("deeper")).unwrap();
    inputs(a.path(), &stub);
    inputs(&b.path().join("deeper"), &stub);

    let mut args = build_args("");
    args.extend(["--out", "icos.efi", "--report-out", "uki.json"].map(String::from));
    let out = run(a.path(), "022", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From the parent directory, with other relative paths and a strict umask.
    let mut args = build_args("deeper/");
    args.extend(["--out", "other.efi", "--report-out", "other.json"].map(String::from));
    let out = run(b.path(), "077", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let x = fs::read(a.path().join("icos.efi")).unwrap();
    let y = fs::read(b.path().join("other.efi")).unwrap();
    assert!(x == y, "the UKI depends on the working directory or umask");
    assert_eq!(
        fs::read(a.path().join("uki.json")).unwrap(),
        fs::read(b.path().join("other.json")).unwrap()
    );

    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(a.path().join("uki.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "icos.uki-report/v1");
    assert_eq!(
        report["cmdline"],
        format!("console=ttyS0 ro roothash={ROOT_HASH}")
    );
    let names: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[names.len() - 5..],
        [".osrel", ".cmdline", ".uname", ".initrd", ".linux"]
    );

    // inspect --json agrees with the report, and shows the command line.
    let out = run(a.path(), "022", &["inspect", "icos.efi", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sections"], report["sections"]);
    assert_eq!(v["cmdline"], report["cmdline"]);
    assert_eq!(v["uname"], "6.1.0-50-amd64");
    let out = run(a.path(), "022", &["inspect", "icos.efi"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(".linux") && text.contains(&format!("roothash={ROOT_HASH}")),
        "{text}"
    );
}

/// Runs a build with `extra` arguments (a second --cmdline-from-verity replaces the first) that
/// must fail; returns stderr and checks that `out` was not written.
fn refused(dir: &Path, extra: &[&str], out: &str) -> String {
    let mut args = build_args("");
    if let Some(i) = extra.iter().position(|a| *a == "--cmdline-from-verity") {
        let at = args
            .iter()
            .position(|a| a == "--cmdline-from-verity")
            .unwrap();
        args[at + 1] = extra[i + 1].to_string();
        args.extend(
            extra
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i && *j != i + 1)
                .map(|(_, a)| a.to_string()),
        );
    } else {
        args.extend(extra.iter().map(|a| a.to_string()));
    }
    let o = run(dir, "022", &args);
    assert!(!o.status.success(), "accepted: {args:?}");
    assert!(
        !dir.join(out).exists() || out == "vmlinuz",
        "{out} was written"
    );
    let partial = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".partial"));
    assert!(!partial, "a temporary file was left behind");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_verity_params_and_colliding_outputs_are_refused() {
    let Some(stub) = systemd_stub() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d, &stub);

    for (name, body, expect) in [
        (
            "upper.json",
            format!(
                "{{\"schema\":\"icos.verity-params/v1\",\"root_hash\":\"{}\"}}",
                ROOT_HASH.to_uppercase()
            ),
            "is not 64 lowercase hex digits",
        ),
        (
            "short.json",
            "{\"schema\":\"icos.verity-params/v1\",\"root_hash\":\"abcd\"}".to_string(),
            "is not 64 lowercase hex digits",
        ),
        (
            "schema.json",
            format!("{{\"schema\":\"icos.disk-report/v1\",\"root_hash\":\"{ROOT_HASH}\"}}"),
            "expected \"icos.verity-params/v1\"",
        ),
        (
            "nohash.json",
            "{\"schema\":\"icos.verity-params/v1\"}".to_string(),
            "has no string field root_hash",
        ),
        ("broken.json", "{\"schema\":".to_string(), "not JSON"),
    ] {
        fs::write(d.join(name), body).unwrap();
        let e = refused(
            d,
            &["--cmdline-from-verity", name, "--out", "x.efi"],
            "x.efi",
        );
        assert!(e.contains(name) && e.contains(expect), "{name}: {e}");
    }

    // A command line that already has roothash= and the verity parameters.
    let mut args = build_args("");
    let at = args.iter().position(|a| a == "console=ttyS0 ro").unwrap();
    args[at] = "console=ttyS0 roothash=00".to_string();
    args.extend(["--out", "x.efi"].map(String::from));
    let o = run(d, "022", &args);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already sets roothash="));

    // Outputs colliding with inputs or each other.
    let e = refused(d, &["--out", "vmlinuz"], "vmlinuz");
    assert!(
        e.contains("the output vmlinuz is the same file as vmlinuz"),
        "{e}"
    );
    assert_eq!(
        fs::read(d.join("vmlinuz")).unwrap(),
        fake_kernel(300_001, 3)
    );
    let e = refused(d, &["--out", "x.efi", "--report-out", "x.efi"], "x.efi");
    assert!(e.contains("is the same file as"), "{e}");
    let e = refused(
        d,
        &["--out", "x.efi", "--report-out", "root.verity.json"],
        "x.efi",
    );
    assert!(
        e.contains("the output root.verity.json is the same file as root.verity.json"),
        "{e}"
    );
    std::os::unix::fs::symlink("initrd.img", d.join("link.efi")).unwrap();
    let e = refused(d, &["--out", "link.efi"], "x.efi");
    assert!(
        e.contains("the output link.efi is the same file as initrd.img"),
        "{e}"
    );
}

#[test]
fn help_has_an_example() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("EXAMPLES:") && text.contains("icos-uki inspect"),
        "{text}"
    );
    // Without the required inputs, clap names them.
    let out = Command::new(BIN).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stub"));
}
