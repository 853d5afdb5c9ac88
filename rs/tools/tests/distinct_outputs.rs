//! Every tool refuses outputs that coincide with each other or with an input, before writing
//! anything: `--out X --manifest X` used to exit 0 and keep only the manifest.

use std::path::Path;
use std::process::Command;

fn refused(bin: &str, args: &[&str], dir: &Path, expected: &str) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{bin} {args:?} succeeded");
    assert!(stderr.contains(expected), "{bin} {args:?}: {stderr}");
}

#[test]
fn outputs_that_coincide_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("image.toml"), "[[dir]]\npath = \"/a\"\n").unwrap();
    std::fs::write(d.join("in.tar"), b"input").unwrap();
    let same = "every output needs its own path";
    let input = "is the same file as ";
    refused(
        env!("CARGO_BIN_EXE_icos-rootfs"),
        &["--spec", "image.toml", "--out", "x", "--manifest", "./x"],
        d,
        &format!("--manifest ./x is the same file as --out x: {same}"),
    );
    refused(
        env!("CARGO_BIN_EXE_icos-rootfs"),
        &[
            "--spec",
            "image.toml",
            "--out",
            "image.toml",
            "--manifest",
            "m",
        ],
        d,
        &format!("--out image.toml is the same file as --spec image.toml: {same}"),
    );
    refused(
        env!("CARGO_BIN_EXE_icos-ext4"),
        &["--rootfs", "in.tar", "--out", "in.tar", "--seed", "s"],
        d,
        input,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-ext4"),
        &[
            "--rootfs",
            "in.tar",
            "--out",
            "o",
            "--params-out",
            "o",
            "--seed",
            "s",
        ],
        d,
        same,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-initramfs"),
        &["--tree", "in.tar", "--out", "in.tar"],
        d,
        input,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-vfat"),
        &[
            "--tree",
            "in.tar",
            "--out",
            "o",
            "--params-out",
            "o",
            "--seed",
            "s",
            "--size",
            "64MiB",
        ],
        d,
        same,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-sums"),
        &["--out", "in.tar", "in.tar"],
        d,
        input,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-pack"),
        &["--out", "in.tar", "in.tar"],
        d,
        input,
    );
    refused(
        env!("CARGO_BIN_EXE_icos-sign"),
        &[
            "update-manifest",
            "--package",
            "in.tar",
            "--uki",
            "u.efi",
            "--verity-params",
            "v.json",
            "--image-id",
            "icos",
            "--version",
            "2",
            "--out",
            "in.tar",
        ],
        d,
        input,
    );
    assert_eq!(std::fs::read(d.join("in.tar")).unwrap(), b"input");
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        2,
        "nothing was written"
    );
}
