//! `apply` and `mark_good` on a real GPT disk image: the happy path A → B → A, and a hostile
//! channel, each refusal asserting its message, that the running entry stays the default, that no
//! `.efi.partial` is left on the ESP and, where the check comes before writing, that the inactive
//! slot did not change.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::*;
use icos_node::disk::Disk;
use icos_update::{apply, mark_good, read_signed, Marked, UpdateError, UpdateManifest};

const STALL: Duration = Duration::from_secs(20);

fn source(p: &Path) -> Box<dyn Read + Send> {
    Box::new(fs::File::open(p).unwrap())
}

/// Verifies `manifest` with the fixture's key and applies `package` to `disk` running `run`.
fn try_apply(
    fx: &Fx,
    disk: &Path,
    run: &Release,
    manifest: &Path,
    package: Box<dyn Read + Send>,
) -> Result<icos_update::Applied, UpdateError> {
    let m = read_signed(manifest, &sig_of(manifest), &fx.public)?;
    apply(
        &Disk::Image(disk.into()),
        &running(run),
        &m,
        package,
        "update-img.tar.zst",
        STALL,
    )
}

#[test]
fn upgrade_a_to_b_mark_good_then_b_to_a() {
    let Some(fx) = fixture() else { return };
    let v1 = fx.release("1", 1);
    let v2 = fx.release("2", 2);
    let v3 = fx.release("3", 3);
    let disk = fx.disk("happy", &v1);
    let root_a_before = read_part(&disk, "root_a");
    let verity_a_before = read_part(&disk, "root_a_verity");

    let done = try_apply(&fx, &disk, &v1, &v2.manifest_path, source(&v2.package)).unwrap();
    assert_eq!(
        (done.slot.as_str(), done.hash_slot.as_str()),
        ("root_b", "root_b_verity")
    );
    assert_eq!(done.entry, "icos_2+3.efi");
    assert_eq!(entries(&disk), ["icos_1.efi", "icos_2+3.efi"]);
    assert_eq!(esp_file(&disk, "icos_2+3.efi"), v2.uki);
    // Valid FAT dates (1980-01-01): EDK2 refuses to rename an entry with date 0 (month 0, day 0),
    // and systemd-boot's boot counting renames it.
    let esp = icos_update::esp::Esp::open(&part(&disk, "esp"), false).unwrap();
    assert_eq!(esp.dates("icos_2+3.efi").unwrap(), [(1980, 1, 1); 2]);
    drop(esp);
    let b = read_part(&disk, "root_b");
    assert_eq!(&b[..v2.root_img.len()], v2.root_img.as_slice());
    let bv = read_part(&disk, "root_b_verity");
    assert_eq!(&bv[..v2.root_verity.len()], v2.root_verity.as_slice());
    // The running slot was never written.
    assert_eq!(read_part(&disk, "root_a"), root_a_before);
    assert_eq!(read_part(&disk, "root_a_verity"), verity_a_before);
    // Stock veritysetup agrees with what landed in slot B.
    let dir = tempfile::tempdir().unwrap();
    let (d, h) = (dir.path().join("b.img"), dir.path().join("b.verity"));
    fs::write(&d, &b).unwrap();
    fs::write(&h, &bv).unwrap();
    let (ok, out) = icos_testsupport::run_checker(
        std::process::Command::new("veritysetup").args([
            "verify".as_ref(),
            d.as_os_str(),
            h.as_os_str(),
            v2.root_hash.to_hex().as_ref(),
        ]),
        "cryptsetup-bin",
    );
    assert!(ok, "veritysetup verify: {out}");

    let fat_rename = |from: &str, to: &str| {
        let esp = icos_update::esp::Esp::open(&part(&disk, "esp"), true).unwrap();
        esp.rename(from, to).unwrap();
        esp.close().unwrap();
    };
    // systemd-boot counts the first attempt: icos_2+3.efi → icos_2+2-1.efi, and B boots. Still on
    // trial, another upgrade would overwrite its fallback (A), so it is refused.
    fat_rename("icos_2+3.efi", "icos_2+2-1.efi");
    let e = try_apply(&fx, &disk, &v2, &v3.manifest_path, source(&v3.package)).unwrap_err();
    assert!(
        e.to_string()
            .contains("the running entry icos_2+2-1.efi is still on trial: run `icos-upgrade mark-good` first"),
        "{e}"
    );
    let marked = mark_good(&Disk::Image(disk.clone()), &running(&v2)).unwrap();
    assert_eq!(
        marked,
        Marked::Renamed("icos_2+2-1.efi".into(), "icos_2.efi".into())
    );
    assert_eq!(
        mark_good(&Disk::Image(disk.clone()), &running(&v2)).unwrap(),
        Marked::AlreadyGood("icos_2.efi".into())
    );
    assert_eq!(entries(&disk), ["icos_1.efi", "icos_2.efi"]);

    // And back: B runs version 2, version 3 goes to A; version 1's entry (slot A) goes first.
    let root_b_before = read_part(&disk, "root_b");
    let done = try_apply(&fx, &disk, &v2, &v3.manifest_path, source(&v3.package)).unwrap();
    assert_eq!(done.slot, "root_a");
    assert_eq!(done.removed, ["icos_1.efi"]);
    assert_eq!(entries(&disk), ["icos_2.efi", "icos_3+3.efi"]);
    assert_eq!(
        &read_part(&disk, "root_a")[..v3.root_img.len()],
        v3.root_img.as_slice()
    );
    assert_eq!(read_part(&disk, "root_b"), root_b_before);
}

/// A disk running v1 from A, and what must stay as it is after a refusal.
struct Before {
    disk: std::path::PathBuf,
    root_b: Vec<u8>,
    verity_b: Vec<u8>,
    entries: Vec<String>,
}

fn fresh(fx: &Fx, name: &str, v1: &Release) -> Before {
    let disk = fx.disk(name, v1);
    Before {
        root_b: read_part(&disk, "root_b"),
        verity_b: read_part(&disk, "root_b_verity"),
        entries: entries(&disk),
        disk,
    }
}

impl Before {
    /// Nothing switched and nothing was left on the ESP (the partial UKI goes again on every
    /// error); with `untouched`, not one byte of the inactive slot changed either.
    fn check(&self, untouched: bool) {
        assert_eq!(
            entries(&self.disk),
            self.entries,
            "the ESP's /EFI/Linux changed"
        );
        if untouched {
            assert!(
                read_part(&self.disk, "root_b") == self.root_b,
                "root_b was written"
            );
            assert!(
                read_part(&self.disk, "root_b_verity") == self.verity_b,
                "root_b_verity was written"
            );
        }
    }
}

fn refused(
    fx: &Fx,
    v1: &Release,
    name: &str,
    manifest: &Path,
    pkg: Box<dyn Read + Send>,
    want: &str,
    untouched: bool,
) {
    let b = fresh(fx, name, v1);
    let e = try_apply(fx, &b.disk, v1, manifest, pkg)
        .unwrap_err()
        .to_string();
    eprintln!("{name}: {e}");
    assert!(e.contains(want), "{name}: {e}\n(expected: {want})");
    b.check(untouched);
}

#[test]
fn hostile_channel_is_refused() {
    let Some(fx) = fixture() else { return };
    let v1 = fx.release("1", 1);
    let v2 = fx.release("2", 2);
    let m = &v2.manifest;

    // The metadata: tampered, wrong key, replay, downgrade, another image.
    let tampered = fx.path("tampered/update-manifest.json");
    fs::create_dir_all(tampered.parent().unwrap()).unwrap();
    fs::write(
        &tampered,
        String::from_utf8(m.to_bytes())
            .unwrap()
            .replace("\"2\"", "\"9\""),
    )
    .unwrap();
    fs::copy(v2.sig(), sig_of(&tampered)).unwrap();
    refused(&fx, &v1, "bad-signature", &tampered, source(&v2.package),
        "the update manifest's signature does not verify, nothing was written: signature update-manifest.json.minisig does not match update-manifest.json", true);

    let other = fx.signed("other-key", m, &fx.other_key);
    refused(
        &fx,
        &v1,
        "wrong-key",
        &other,
        source(&v2.package),
        "wrong key",
        true,
    );

    let replay = fx.signed("replay", &v1_manifest(&fx, &v1), &fx.key);
    refused(
        &fx,
        &v1,
        "replay",
        &replay,
        source(&v1.package),
        "refused, nothing was written: replay: version 1 is the version this node runs",
        true,
    );

    let v0 = UpdateManifest {
        version: "0.9".into(),
        ..m.clone()
    };
    let down = fx.signed("downgrade", &v0, &fx.key);
    refused(
        &fx,
        &v1,
        "downgrade",
        &down,
        source(&v2.package),
        "downgrade: version 0.9 is older than the running version 1",
        true,
    );

    let foreign = UpdateManifest {
        image_id: "other".into(),
        ..m.clone()
    };
    let foreign = fx.signed("foreign", &foreign, &fx.key);
    refused(
        &fx,
        &v1,
        "foreign",
        &foreign,
        source(&v2.package),
        "the update is for image \"other\", this node runs \"icos\"",
        true,
    );

    // Sizes the slot cannot hold are refused before writing.
    let mut huge = m.clone();
    huge.members[1].size = 64 * MIB;
    let huge = fx.signed("too-big-for-slot", &huge, &fx.key);
    refused(
        &fx,
        &v1,
        "too-big",
        &huge,
        source(&v2.package),
        "root.img is 67108864 bytes, more than the 2097152 bytes of root_b",
        true,
    );

    // Metadata claiming bigger sizes than the stream has: refused at the member's header.
    let mut bigger = m.clone();
    bigger.members[1].size += 4096;
    let bigger = fx.signed("bigger", &bigger, &fx.key);
    refused(&fx, &v1, "claims-bigger", &bigger, source(&v2.package),
        &format!("member root.img holds {} bytes, but the signed manifest says {}: refusing it before writing",
            v2.root_img.len(), v2.root_img.len() + 4096), true);

    // One flipped byte in the package (inside the compressed data).
    let mut bytes = fs::read(&v2.package).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let flipped = fx.path("flipped.tar.zst");
    fs::write(&flipped, &bytes).unwrap();
    refused(
        &fx,
        &v1,
        "flipped",
        &v2.manifest_path,
        source(&flipped),
        "update package update-img.tar.zst:",
        false,
    );

    // A truncated package.
    let bytes = fs::read(&v2.package).unwrap();
    let cut = fx.path("cut.tar.zst");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(
        &fx,
        &v1,
        "truncated",
        &v2.manifest_path,
        source(&cut),
        "truncated",
        false,
    );

    // A longer package than signed: never read past the signed size.
    let mut long = fs::read(&v2.package).unwrap();
    long.extend_from_slice(&[0u8; 100]);
    let longp = fx.path("long.tar.zst");
    fs::write(&longp, &long).unwrap();
    refused(
        &fx,
        &v1,
        "longer",
        &v2.manifest_path,
        source(&longp),
        &format!(
            "the source holds more than the {} bytes the signed manifest says",
            m.package.size
        ),
        false,
    );

    // A tampered member: another root.img packed, its manifest still the signed one.
    let evil_root = fx.path("evil-root.img");
    let mut evil = v2.root_img.clone();
    evil[4096 * 7] ^= 1;
    fs::write(&evil_root, &evil).unwrap();
    let evil_pkg = fx.path("evil.tar.zst");
    pack(
        &evil_pkg,
        &[
            (&v2.dir.join("icos_2.efi"), "uki.efi"),
            (&evil_root, "root.img"),
            (&v2.dir.join("root.verity"), "root.verity"),
        ],
    );
    refused(
        &fx,
        &v1,
        "tampered-member",
        &v2.manifest_path,
        source(&evil_pkg),
        "member root.img has sha256:",
        false,
    );

    // An extra member, signed (package digest and size right): the reader refuses it.
    let extra_pkg = fx.path("extra/update-img.tar.zst");
    fs::create_dir_all(extra_pkg.parent().unwrap()).unwrap();
    pack(
        &extra_pkg,
        &[
            (&v2.dir.join("icos_2.efi"), "uki.efi"),
            (&v2.dir.join("root.img"), "root.img"),
            (&v2.dir.join("root.verity"), "root.verity"),
            (&v2.dir.join("os-release"), "os-release"),
        ],
    );
    let mut em = m.clone();
    (em.package.sha256, em.package.size) = icos_common::sha256_file(&extra_pkg).unwrap();
    let em = fx.signed("extra", &em, &fx.key);
    refused(
        &fx,
        &v1,
        "extra",
        &em,
        source(&extra_pkg),
        "unexpected member \"os-release\" after root.verity",
        false,
    );

    // A duplicate member.
    let dup_pkg = fx.path("dup.tar.zst");
    raw_package(&dup_pkg, &[("uki.efi", &v2.uki), ("uki.efi", &v2.uki)]);
    refused(
        &fx,
        &v1,
        "duplicate",
        &v2.manifest_path,
        source(&dup_pkg),
        "member uki.efi appears twice",
        true,
    );

    // A missing member.
    let miss_pkg = fx.path("missing.tar.zst");
    pack(
        &miss_pkg,
        &[
            (&v2.dir.join("icos_2.efi"), "uki.efi"),
            (&v2.dir.join("root.img"), "root.img"),
        ],
    );
    refused(
        &fx,
        &v1,
        "missing",
        &v2.manifest_path,
        source(&miss_pkg),
        "member root.verity is missing",
        false,
    );

    // Members fine, but the signed root hash is not theirs: verity check after writing.
    let mut wrong_root = m.clone();
    wrong_root.root_hash = v1.root_hash.to_hex();
    let wr = fx.signed("wrong-root-hash", &wrong_root, &fx.key);
    refused(
        &fx,
        &v1,
        "wrong-root-hash",
        &wr,
        source(&v2.package),
        "does not verify against the signed root hash, the boot entry is unchanged",
        false,
    );

    // A stalled source.
    struct Stall(Vec<u8>, usize);
    impl Read for Stall {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                std::thread::sleep(Duration::from_secs(3600));
            }
            let n = buf.len().min(4096).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let b = fresh(&fx, "stall", &v1);
    let mm = read_signed(&v2.manifest_path, &v2.sig(), &fx.public).unwrap();
    let e = apply(
        &Disk::Image(b.disk.clone()),
        &running(&v1),
        &mm,
        Box::new(Stall(fs::read(&v2.package).unwrap(), 0)),
        "update-img.tar.zst",
        Duration::from_secs(1),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("update package update-img.tar.zst: the source stalled: no data for 1 s"),
        "{e}"
    );
    b.check(false);
}

fn v1_manifest(_fx: &Fx, v1: &Release) -> UpdateManifest {
    v1.manifest.clone()
}
