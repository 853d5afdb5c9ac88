//! `icos-upgrade` as a program: apply from standard input onto a disk image, mark-good, and a
//! refusal's message and exit status.

#[path = "../../crates/update/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn upgrade(args: &[String], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_icos-upgrade"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        // A refusal before the package is read closes the pipe early: that is not an error here.
        let _ = input.write_all(data);
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn apply_from_stdin_then_mark_good() {
    let Some(fx) = fixture() else { return };
    let v1 = fx.release("1", 1);
    let v2 = fx.release("2", 2);
    let disk = fx.disk("cli", &v1);
    let pubkey = fx.path("release.pub");
    let osrel1 = fx.path("os-release-1");
    std::fs::write(&osrel1, "IMAGE_ID=\"icos\"\nIMAGE_VERSION=\"1\"\n").unwrap();
    let node = |osrel: &std::path::Path, root: &icos_verity::RootHash| {
        vec![
            "--disk".to_string(),
            disk.display().to_string(),
            "--public-key".into(),
            pubkey.display().to_string(),
            "--os-release".into(),
            osrel.display().to_string(),
            "--root-hash".into(),
            root.to_hex(),
        ]
    };
    let run = |sub: &str, extra: Vec<String>, stdin: Option<&[u8]>| {
        let mut args = vec![sub.to_string()];
        args.extend(extra);
        upgrade(&args, stdin)
    };

    // A tampered manifest: exit status 1, the signature named, nothing switched.
    let bad = fx.path("bad/update-manifest.json");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(
        &bad,
        String::from_utf8(v2.manifest.to_bytes())
            .unwrap()
            .replace("root.img", "root.imh"),
    )
    .unwrap();
    std::fs::copy(v2.sig(), sig_of(&bad)).unwrap();
    let mut a = vec![
        "--package".to_string(),
        "-".into(),
        "--manifest".into(),
        bad.display().to_string(),
    ];
    a.extend(node(&osrel1, &v1.root_hash));
    let (ok, err) = run("apply", a, Some(&std::fs::read(&v2.package).unwrap()));
    assert!(!ok);
    assert!(
        err.contains("icos-upgrade: error: the update manifest's signature does not verify"),
        "{err}"
    );
    assert_eq!(entries(&disk), ["icos_1.efi"]);

    let mut a = vec![
        "--package".to_string(),
        "-".into(),
        "--manifest".into(),
        v2.manifest_path.display().to_string(),
    ];
    a.extend(node(&osrel1, &v1.root_hash));
    let (ok, err) = run("apply", a, Some(&std::fs::read(&v2.package).unwrap()));
    assert!(ok, "{err}");
    // The write is announced before it starts (a console shows whether the slot was touched).
    assert!(
        err.starts_with("icos-upgrade: version 2 checked; writing it to root_b + root_b_verity\n"),
        "{err}"
    );
    assert!(err.contains("version 2 written to root_b + root_b_verity and verified; next boot: icos_2+3.efi (3 tries)"), "{err}");

    let osrel2 = fx.path("os-release-2");
    std::fs::write(&osrel2, "IMAGE_ID=\"icos\"\nIMAGE_VERSION=\"2\"\n").unwrap();
    let (ok, err) = run("mark-good", node(&osrel2, &v2.root_hash), None);
    assert!(ok, "{err}");
    assert!(
        err.contains("version 2 marked good: icos_2+3.efi -> icos_2.efi"),
        "{err}"
    );
    assert_eq!(entries(&disk), ["icos_1.efi", "icos_2.efi"]);
}
