//! End-to-end: the icos-verity binary builds a hash device that `veritysetup verify` accepts, the
//! same bytes from runs that differ in working directory and umask, refuses bad inputs without
//! leaving an output behind, and `icos-verity verify` exits 0 / 1 naming the damage.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use icos_testsupport::{noise, run_checker};

const BIN: &str = env!("CARGO_BIN_EXE_icos-verity");
const SEED: &str = "e2e-seed";

/// Runs the binary in `cwd` under `umask` (through sh, so the umask is the process's own).
fn run_in(cwd: &Path, umask: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn build(cwd: &Path, umask: &str) -> (Vec<u8>, Vec<u8>) {
    let o = run_in(
        cwd,
        umask,
        &[
            "--data",
            "root.img",
            "--out",
            "out/root.verity",
            "--seed",
            SEED,
            "--label",
            "root",
            "--report-out",
            "out/root.verity.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Not a terminal: no progress bar and no summary line (a build log shows warnings only).
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.is_empty(), "{stderr:?}");
    (
        fs::read(cwd.join("out/root.verity")).unwrap(),
        fs::read(cwd.join("out/root.verity.json")).unwrap(),
    )
}

fn setup(dir: &Path, data: &[u8]) {
    fs::create_dir_all(dir.join("out")).unwrap();
    fs::write(dir.join("root.img"), data).unwrap();
}

#[test]
fn same_bytes_from_different_directories_and_umasks_and_veritysetup_agrees() {
    let data = noise(700 * 4096, 11);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    setup(a.path(), &data);
    setup(b.path(), &data);
    let (hash_a, report_a) = build(a.path(), "022");
    let (hash_b, report_b) = build(b.path(), "077");
    assert!(hash_a == hash_b, "hash devices differ between the two runs");
    assert_eq!(
        String::from_utf8(report_a.clone()).unwrap(),
        String::from_utf8(report_b).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    for p in ["out/root.verity", "out/root.verity.json"] {
        let mode = fs::metadata(b.path().join(p)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{p} under umask 077");
    }

    let report: serde_json::Value = serde_json::from_slice(&report_a).unwrap();
    assert_eq!(report["schema"], "icos.verity-params/v1");
    assert_eq!(report["data_blocks"], 700);
    assert_eq!(report["data_size"], 700 * 4096);
    assert_eq!(report["hash_start_block"], 1);
    assert_eq!(report["hash_algorithm"], "sha256");
    assert_eq!(report["label"], "root");
    assert_eq!(report["hash_size"], hash_a.len());
    let keys: Vec<_> = report.as_object().unwrap().keys().cloned().collect();
    let text_keys: Vec<String> = String::from_utf8(report_a)
        .unwrap()
        .lines()
        .filter_map(|l| Some(l.trim().strip_prefix('"')?.split('"').next()?.to_string()))
        .collect();
    assert_eq!(text_keys, keys, "keys in the file are sorted");
    let root = report["root_hash"].as_str().unwrap();

    let dir = a.path();
    let (ok, out) = run_checker(
        Command::new("/usr/sbin/veritysetup").args([
            "verify",
            dir.join("root.img").to_str().unwrap(),
            dir.join("out/root.verity").to_str().unwrap(),
            root,
        ]),
        "cryptsetup-bin",
    );
    assert!(
        ok,
        "veritysetup verify refused icos-verity's output:\n{out}"
    );

    // And our own verify subcommand.
    let verify = |data: &str, root: &str| {
        run_in(
            dir,
            "022",
            &[
                "verify",
                "--data",
                data,
                "--hash",
                "out/root.verity",
                "--root-hash",
                root,
            ],
        )
    };
    let o = verify("root.img", root);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .starts_with("verified: root.img and out/root.verity match root hash"));

    let mut bad = data.clone();
    bad[123 * 4096 + 1] ^= 4;
    fs::write(dir.join("bad.img"), &bad).unwrap();
    let o = verify("bad.img", root);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "icos-verity: error: bad.img and out/root.verity do not verify: data block 123 (bytes \
         503808..507904 of the data device) does not match its digest in hash block 2 (level 0)\n"
    );

    let mut other = root.as_bytes().to_vec();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let o = verify("root.img", std::str::from_utf8(&other).unwrap());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("root hash mismatch: expected"),
        "{}",
        text(&o)
    );

    let o = verify("root.img", "abc");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("is not 64 hexadecimal digits"),
        "{}",
        text(&o)
    );
}

#[test]
fn refuses_bad_inputs_without_leaving_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("odd.img"), noise(4096 * 3 + 100, 1)).unwrap();
    fs::write(d.join("empty.img"), b"").unwrap();
    let data = noise(4096 * 3, 2);
    fs::write(d.join("root.img"), &data).unwrap();
    let run = |args: &[&str]| run_in(d, "022", args);
    let listing = || {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let before = listing();

    let o = run(&["--data", "odd.img", "--out", "h", "--seed", SEED]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "icos-verity: error: building h: odd.img is 12388 bytes, not a positive multiple of 4096: \
         dm-verity hashes whole 4 KiB blocks (pad the image to a 4 KiB multiple; icos-ext4 images \
         always are)\n"
    );
    let o = run(&["--data", "empty.img", "--out", "h", "--seed", SEED]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("empty.img is 0 bytes, not a positive multiple of 4096"));

    for (args, msg) in [
        (
            &["--data", "root.img", "--out", "root.img", "--seed", SEED][..],
            "icos-verity: error: --out root.img is the same file as --data root.img: every output \
             needs its own path\n",
        ),
        (
            &[
                "--data",
                "root.img",
                "--out",
                "./sub/../root.img",
                "--seed",
                SEED,
            ][..],
            "icos-verity: error: --out ./sub/../root.img is the same file as --data root.img: \
             every output needs its own path\n",
        ),
        (
            &[
                "--data",
                "root.img",
                "--out",
                "h",
                "--seed",
                SEED,
                "--report-out",
                "root.img",
            ][..],
            "icos-verity: error: --report-out root.img is the same file as --data root.img: every \
             output needs its own path\n",
        ),
        (
            &[
                "--data",
                "root.img",
                "--out",
                "h",
                "--seed",
                SEED,
                "--report-out",
                "./h",
            ][..],
            "icos-verity: error: --report-out ./h is the same file as --out h: every output needs \
             its own path\n",
        ),
        (
            &[
                "--data", "root.img", "--out", "h", "--seed", SEED, "--label", "a:b",
            ][..],
            "icos-verity: error: building h: label \"a:b\" must be 1 to 64 characters of A-Z a-z \
             0-9 . _ - (it names the seed purposes verity:salt:<label> and verity:uuid:<label>)\n",
        ),
    ] {
        if args.contains(&"./sub/../root.img") {
            fs::create_dir_all(d.join("sub")).unwrap();
        }
        let o = run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stderr), msg, "{args:?}");
        let _ = fs::remove_dir(d.join("sub"));
    }
    assert_eq!(listing(), before, "a refused run left a file behind");
    assert_eq!(
        fs::read(d.join("root.img")).unwrap(),
        data,
        "the input changed"
    );

    let o = run(&["--data", "missing.img", "--out", "h", "--seed", SEED]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("cannot read missing.img: No such file or directory"),
        "{}",
        text(&o)
    );
    assert_eq!(listing(), before);

    let o = run(&["--data", "root.img", "--out", "h"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--seed <SEED>"), "{}", text(&o));
}

#[test]
fn help_has_examples() {
    for args in [&["--help"][..], &["verify", "--help"][..]] {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert!(o.status.success());
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("EXAMPLE"), "{args:?}: {s}");
        assert!(s.contains("icos-verity"), "{s}");
    }
}
