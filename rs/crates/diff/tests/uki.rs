//! icos-diff names the section of a unified kernel image that differs (the root hash lives in
//! `.cmdline`), reading both UKIs with the UKI reader.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use icos_diff::{diff_dirs, Options};
use icos_testsupport::{fake_kernel, systemd_stub};
use icos_uki::{write_uki, UkiSpec};

fn uki(dir: &Path, name: &str, cmdline: &str) -> Vec<u8> {
    let stub = systemd_stub().expect("the pinned systemd stub (apt-get download systemd-boot-efi)");
    fs::write(
        dir.join("osrel"),
        "ID=icos\nIMAGE_ID=icos\nIMAGE_VERSION=1\n",
    )
    .unwrap();
    fs::write(dir.join("initrd"), b"initramfs bytes").unwrap();
    fs::write(dir.join("linux"), fake_kernel(64 << 10, 7)).unwrap();
    let spec = UkiSpec {
        stub,
        osrel: dir.join("osrel"),
        cmdline: cmdline.into(),
        uname: None,
        initrd: dir.join("initrd"),
        linux: dir.join("linux"),
    };
    let out = dir.join(name);
    write_uki(&spec, &out).unwrap();
    fs::read(out).unwrap()
}

#[test]
fn a_differing_uki_is_narrowed_to_its_section() {
    let tmp = tempfile::tempdir().unwrap();
    let build = Build::new();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, hash) in [(&a, "aa"), (&b, "ab")] {
        build.write(dir);
        let efi = uki(
            tmp.path(),
            "u.efi",
            &format!("console=ttyS0 roothash={}", hash.repeat(32)),
        );
        write_package(
            &dir.join("update-img.tar.zst"),
            &[("uki.efi", &efi, false), ("root.img", build.root(), true)],
            1_700_000_000,
        );
        write_sums(dir);
    }
    let report = diff_dirs(&a, &b, &Options::default()).unwrap();
    let text = report.render_text();
    let sections: Vec<&str> = text.lines().filter(|l| l.contains("UKI section")).collect();
    assert_eq!(sections.len(), 1, "{text}");
    assert!(
        sections[0].starts_with(
            "artifact update-img.tar.zst: member uki.efi: UKI section .cmdline differs"
        ),
        "{text}"
    );
}
