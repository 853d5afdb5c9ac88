//! The release side: `make_manifest` on a real package and UKI, its refusals, its determinism,
//! and its signature checked by stock minisign.

mod common;

use common::*;

#[test]
fn manifest_is_deterministic_checked_against_the_uki_and_stock_minisign_accepts_its_signature() {
    let Some(fx) = fixture() else { return };
    let v2 = fx.release("2", 2);
    let v1 = fx.release("1", 1);
    let params = v2.dir.join("root.verity.json");
    let uki = v2.dir.join("icos_2.efi");

    let again = icos_update::make_manifest(&v2.package, &uki, &params, "icos", "2").unwrap();
    assert_eq!(again.to_bytes(), v2.manifest.to_bytes());
    assert_eq!(again.root_hash, v2.root_hash.to_hex());
    assert_eq!(
        (again.package.size, again.members[1].size),
        (
            std::fs::metadata(&v2.package).unwrap().len(),
            v2.root_img.len() as u64
        )
    );

    let e = icos_update::make_manifest(&v2.package, &uki, &params, "icos", "3").unwrap_err();
    assert!(
        e.to_string().contains(
            "the UKI's .osrel says IMAGE_ID=icos IMAGE_VERSION=2, the release says icos 3"
        ),
        "{e}"
    );
    let e = icos_update::make_manifest(
        &v2.package,
        &v1.dir.join("icos_1.efi"),
        &params,
        "icos",
        "2",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("is not the package's uki.efi member"),
        "{e}"
    );
    let e = icos_update::make_manifest(
        &v2.package,
        &uki,
        &v1.dir.join("root.verity.json"),
        "icos",
        "2",
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not carry roothash="), "{e}");

    let (ok, out) = icos_testsupport::run_checker(
        std::process::Command::new("minisign")
            .arg("-Vm")
            .arg(&v2.manifest_path)
            .arg("-p")
            .arg(fx.path("release.pub")),
        "minisign",
    );
    assert!(ok, "minisign -V: {out}");
    assert!(out.contains("file:update-manifest.json sha256:"), "{out}");
}
