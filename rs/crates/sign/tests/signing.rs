//! Keys and signatures: our keygen/sign against stock minisign, in both directions.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{quick_key, run_minisign, stock_verify};
use icos_sign::{
    keygen, keygen_with_limits, sign_file, verify_file, KdfLimits, KeyError, Password, Protection,
    SigProblem, SigningKey,
};

/// Cheap scrypt limits for tests that are not about the key's cost (N = 2^10).
const CHEAP: KdfLimits = KdfLimits {
    opslimit: 32_768,
    memlimit: 1 << 20,
};

/// The key-derivation fields of a minisign secret key file: (kdf algorithm, opslimit, memlimit).
fn kdf_fields(path: &std::path::Path) -> ([u8; 2], u64, u64) {
    let text = fs::read_to_string(path).unwrap();
    let raw = ct_codecs_decode(text.lines().nth(1).unwrap());
    let le = |r: std::ops::Range<usize>| u64::from_le_bytes(raw[r].try_into().unwrap());
    ([raw[2], raw[3]], le(38..46), le(46..54))
}

#[test]
fn encrypted_keygen_sign_verifies_with_ours_and_stock_minisign_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (
        dir.path().join("release.key"),
        dir.path().join("release.pub"),
    );
    let pw_file = dir.path().join("pw");
    fs::write(&pw_file, "correct horse battery\n").unwrap();
    let pw = Password::from_file(&pw_file).unwrap();
    let id = keygen_with_limits(&sk, &pk, &Protection::Password(pw.clone()), false, CHEAP).unwrap();

    assert_eq!(
        fs::metadata(&sk).unwrap().permissions().mode() & 0o777,
        0o600,
        "secret key must be private"
    );
    let pub_text = fs::read_to_string(&pk).unwrap();
    assert_eq!(
        pub_text.lines().next().unwrap(),
        format!("untrusted comment: minisign public key: {id}")
    );
    assert!(!fs::read_to_string(&sk).unwrap().contains("correct horse"));

    let key = SigningKey::load(&sk, Some(&pw)).unwrap();
    assert_eq!(key.id(), id);
    let file = dir.path().join("SHA256SUMS");
    fs::write(
        &file,
        "0000000000000000000000000000000000000000000000000000000000000000  a\n",
    )
    .unwrap();
    let sig = sign_file(&key, &file).unwrap();
    assert_eq!(sig, dir.path().join("SHA256SUMS.minisig"));
    let first = fs::read(&sig).unwrap();
    sign_file(&key, &file).unwrap();
    assert_eq!(
        first,
        fs::read(&sig).unwrap(),
        "two signatures of the same file with the same key differ"
    );

    let text = String::from_utf8(first).unwrap();
    let (digest, _) = icos_common::sha256_file(&file).unwrap();
    assert_eq!(
        text.lines().nth(2).unwrap(),
        format!("trusted comment: file:SHA256SUMS sha256:{}", digest.hex())
    );
    assert!(
        !text.contains("timestamp"),
        "no clock in signatures: {text}"
    );

    let public = icos_sign::PublicKey::load(&pk).unwrap();
    assert_eq!(public.id(), id);
    let comment = verify_file(&public, &file).unwrap();
    assert!(comment.starts_with("file:SHA256SUMS sha256:"));

    let (ok, out) = stock_verify(&file, &pk);
    assert!(ok, "stock minisign rejected our signature: {out}");
    assert!(
        out.contains("Trusted comment: file:SHA256SUMS sha256:"),
        "{out}"
    );

    // Stock minisign signs with our encrypted key (password on stdin) and we verify its signature.
    let other = dir.path().join("notes.txt");
    fs::write(&other, "stock signed\n").unwrap();
    let out = run_minisign(
        &["-Sm", other.to_str().unwrap(), "-s", sk.to_str().unwrap()],
        "correct horse battery\n",
    );
    assert!(
        out.status.success(),
        "stock minisign could not use our key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_file(&public, &other).unwrap();
}

#[test]
fn stock_unencrypted_key_signs_and_stock_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("w.key"), dir.path().join("w.pub"));
    let out = run_minisign(
        &[
            "-G",
            "-W",
            "-p",
            pk.to_str().unwrap(),
            "-s",
            sk.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "minisign -G -W failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unencrypted: no password needed, and one given anyway is ignored.
    let key = SigningKey::load(&sk, None).unwrap();
    let file = dir.path().join("disk-img.tar.zst");
    fs::write(&file, vec![0x5a; 200_000]).unwrap();
    sign_file(&key, &file).unwrap();
    let (ok, out) = stock_verify(&file, &pk);
    assert!(ok, "{out}");
    let public = icos_sign::PublicKey::load(&pk).unwrap();
    verify_file(&public, &file).unwrap();

    // Our --unencrypted keys work with stock minisign too.
    let (our_sk, our_pk, _) = quick_key(dir.path(), "ours");
    let out = run_minisign(
        &[
            "-Sm",
            file.to_str().unwrap(),
            "-s",
            our_sk.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out) = stock_verify(&file, &our_pk);
    assert!(ok, "{out}");
}

/// Stock `minisign -G` encrypts with scrypt at 1 GiB of memory ("sensitive" limits), and so does
/// our keygen: each of the four key derivations here takes a few seconds.
#[test]
fn new_keys_cost_what_stock_minisign_keys_cost_and_both_tools_use_each_others() {
    let dir = tempfile::tempdir().unwrap();
    let (stock_sk, stock_pk) = (dir.path().join("stock.key"), dir.path().join("stock.pub"));
    let out = run_minisign(
        &[
            "-G",
            "-p",
            stock_pk.to_str().unwrap(),
            "-s",
            stock_sk.to_str().unwrap(),
        ],
        "stock pass\nstock pass\n",
    );
    assert!(
        out.status.success(),
        "minisign -G failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ours_sk, ours_pk) = (dir.path().join("ours.key"), dir.path().join("ours.pub"));
    keygen(
        &ours_sk,
        &ours_pk,
        &Protection::Password(Password::new("our pass", "test")),
        false,
    )
    .unwrap();
    // The same scrypt algorithm and limits as stock minisign's own keys.
    let stock = kdf_fields(&stock_sk);
    assert_eq!(stock, (*b"Sc", 33_554_432, 1_073_741_824));
    assert_eq!(kdf_fields(&ours_sk), stock);
    assert_eq!(
        (
            KdfLimits::MINISIGN_DEFAULT.opslimit,
            KdfLimits::MINISIGN_DEFAULT.memlimit
        ),
        (stock.1, stock.2)
    );

    // Stock minisign signs with our key, and we verify its signature.
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, "stock signed\n").unwrap();
    let out = run_minisign(
        &[
            "-Sm",
            notes.to_str().unwrap(),
            "-s",
            ours_sk.to_str().unwrap(),
        ],
        "our pass\n",
    );
    assert!(
        out.status.success(),
        "stock minisign could not use our key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_file(&icos_sign::PublicKey::load(&ours_pk).unwrap(), &notes).unwrap();

    // We sign with the stock key (password from a file), and stock minisign verifies.
    let file = dir.path().join("build-manifest.json");
    fs::write(&file, "{}\n").unwrap();
    // No password for an encrypted key: a clear error, no prompt.
    let err = SigningKey::load(&stock_sk, None).unwrap_err();
    assert!(matches!(err, KeyError::PasswordRequired { .. }), "{err}");
    assert!(err.to_string().contains("--password-file"), "{err}");
    let pw_file = dir.path().join("pw");
    fs::write(&pw_file, "stock pass\r\n").unwrap();
    let key = SigningKey::load(&stock_sk, Some(&Password::from_file(&pw_file).unwrap())).unwrap();
    sign_file(&key, &file).unwrap();
    let (ok, out) = stock_verify(&file, &stock_pk);
    assert!(ok, "{out}");
}

#[test]
fn keys_made_with_other_scrypt_limits_still_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    // What icos-sign keygen wrote before it used minisign's limits, and a cheaper set.
    let old = KdfLimits {
        opslimit: 1 << 20,
        memlimit: 32 << 20,
    };
    for (name, limits) in [("old", old), ("cheap", CHEAP)] {
        let (sk, pk) = (
            dir.path().join(format!("{name}.key")),
            dir.path().join(format!("{name}.pub")),
        );
        let pw = Password::new(format!("{name} pass"), "test");
        keygen_with_limits(&sk, &pk, &Protection::Password(pw.clone()), false, limits).unwrap();
        assert_eq!(kdf_fields(&sk), (*b"Sc", limits.opslimit, limits.memlimit));
        let key = SigningKey::load(&sk, Some(&pw)).unwrap();
        let file = dir.path().join(format!("{name}.txt"));
        fs::write(&file, name).unwrap();
        sign_file(&key, &file).unwrap();
        let (ok, out) = stock_verify(&file, &pk);
        assert!(ok, "{out}");
        // Stock minisign decrypts it too.
        let out = run_minisign(
            &["-Sm", file.to_str().unwrap(), "-s", sk.to_str().unwrap()],
            &format!("{name} pass\n"),
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = SigningKey::load(&sk, Some(&Password::new("wrong", "test"))).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    }
    // Limits past minisign's maximum are refused at keygen, naming them.
    let err = keygen_with_limits(
        &dir.path().join("x.key"),
        &dir.path().join("x.pub"),
        &Protection::Password(Password::new("p", "test")),
        false,
        KdfLimits {
            opslimit: 1 << 40,
            memlimit: 1 << 32,
        },
    )
    .unwrap_err();
    assert!(matches!(err, KeyError::BadLimits { .. }), "{err}");
}

#[test]
fn wrong_password_is_refused_and_never_shown() {
    const SECRET: &str = "Sup3r-S3cret-Passw0rd";
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("p.key"), dir.path().join("p.pub"));
    keygen_with_limits(
        &sk,
        &pk,
        &Protection::Password(Password::new("the real one", "test")),
        false,
        CHEAP,
    )
    .unwrap();

    let pw = Password::new(SECRET, "ICOS_SIGN_PASSWORD");
    let err = SigningKey::load(&sk, Some(&pw)).unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    // What the binary prints is the Display chain; Debug is what a panic or {:?} would show.
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        format!("{err:#?}"),
        format!("{pw:?}"),
    ] {
        assert!(!shown.contains(SECRET), "password leaked: {shown}");
        assert!(!shown.contains("the real one"), "password leaked: {shown}");
    }
    assert!(
        err.to_string().contains("wrong password for secret key"),
        "{err}"
    );

    // Refusals at keygen name where the password came from, never the password.
    let err =
        Protection::choose(Some(Password::new(SECRET, "password file pw.txt")), true).unwrap_err();
    assert!(
        err.to_string().contains("password file pw.txt")
            && !format!("{err} {err:?}").contains(SECRET)
    );
}

#[test]
fn signing_key_debug_never_shows_key_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, _, key) = quick_key(dir.path(), "k");
    let b64 = fs::read_to_string(&sk)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let dbg = format!("{key:?} {key:#?}");
    assert!(dbg.contains(&key.id().to_string()));
    assert!(dbg.len() < 80, "Debug shows more than the key id: {dbg}");
    assert!(!dbg.contains(&b64[20..40]));
}

#[test]
fn keygen_refuses_empty_missing_conflicting_passwords_and_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("k.key"), dir.path().join("k.pub"));

    let empty = dir.path().join("empty");
    fs::write(&empty, "\n").unwrap();
    let err = Protection::choose(Some(Password::from_file(&empty).unwrap()), false).unwrap_err();
    assert!(matches!(err, KeyError::EmptyPassword { .. }), "{err}");
    assert!(err.to_string().contains("--unencrypted"), "{err}");

    let err = Protection::choose(None, false).unwrap_err();
    assert!(matches!(err, KeyError::NoPassword), "{err}");
    assert!(matches!(
        Protection::choose(None, true),
        Ok(Protection::Unencrypted)
    ));
    let err = Password::from_file(&dir.path().join("absent")).unwrap_err();
    assert!(
        err.to_string().contains("cannot read the password file"),
        "{err}"
    );

    keygen(&sk, &pk, &Protection::Unencrypted, false).unwrap();
    let before = fs::read(&sk).unwrap();
    let err = keygen(&sk, &pk, &Protection::Unencrypted, false).unwrap_err();
    assert!(
        matches!(&err, KeyError::Exists { path } if *path == sk),
        "{err}"
    );
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        before,
        fs::read(&sk).unwrap(),
        "a refused keygen changed the key"
    );
    // Only the public key existing is refused as well.
    fs::remove_file(&sk).unwrap();
    let err = keygen(&sk, &pk, &Protection::Unencrypted, false).unwrap_err();
    assert!(
        matches!(&err, KeyError::Exists { path } if *path == pk),
        "{err}"
    );

    keygen(&sk, &pk, &Protection::Unencrypted, true).unwrap();
    assert_ne!(
        before,
        fs::read(&sk).unwrap(),
        "--force did not make a new key"
    );
    let err = keygen(&sk, &sk, &Protection::Unencrypted, true).unwrap_err();
    assert!(matches!(err, KeyError::SamePath { .. }));
    // No temporary files left behind.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["empty", "k.key", "k.pub"]);
}

#[test]
fn bad_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk, _) = quick_key(dir.path(), "k");
    // The public key where the secret key belongs, and the other way round.
    let err = SigningKey::load(&pk, None).unwrap_err();
    assert!(matches!(err, KeyError::BadSecretKey { .. }), "{err}");
    let err = icos_sign::PublicKey::load(&sk).unwrap_err();
    assert!(matches!(err, KeyError::BadPublicKey { .. }), "{err}");
    // A corrupted unencrypted key (one bit of the seed flipped) fails its checksum.
    let text = fs::read_to_string(&sk).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut raw = ct_codecs_decode(&lines[1]);
    raw[70] ^= 1;
    lines[1] = ct_codecs_encode(&raw);
    let broken = dir.path().join("broken.key");
    fs::write(&broken, lines.join("\n") + "\n").unwrap();
    let err = SigningKey::load(&broken, None).unwrap_err();
    assert!(err.to_string().contains("corrupted"), "{err}");
}

fn ct_codecs_decode(s: &str) -> Vec<u8> {
    use ct_codecs::{Base64, Decoder};
    Base64::decode_to_vec(s, None).unwrap()
}

fn ct_codecs_encode(b: &[u8]) -> String {
    use ct_codecs::{Base64, Encoder};
    Base64::encode_to_string(b).unwrap()
}

#[test]
fn signature_of_another_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pk, key) = quick_key(dir.path(), "k");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    fs::write(&a, "same\n").unwrap();
    fs::write(&b, "same\n").unwrap();
    sign_file(&key, &a).unwrap();
    fs::copy(
        dir.path().join("a.json.minisig"),
        dir.path().join("b.json.minisig"),
    )
    .unwrap();
    let public = icos_sign::PublicKey::load(&pk).unwrap();
    let err = verify_file(&public, &b).unwrap_err();
    assert!(
        matches!(&err, SigProblem::WrongFile { named, .. } if named == "a.json"),
        "{err}"
    );
}

/// Found by fuzzing (rs/fuzz minisign): minisign 0.10 panics on a global signature that is not 64
/// bytes. A hostile .minisig must be refused as malformed, naming the line, before it gets there.
#[test]
fn a_global_signature_of_the_wrong_length_is_malformed_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let pk_path = dir.path().join("key.pub");
    fs::write(
        &pk_path,
        "untrusted comment: minisign public key 5FF92869132CD63\n\
         RWRjzTKRhpL/BaqBEEpTl9YM/X9jtetoj7zm9/auN+s2wp3h3yT/N/6i\n",
    )
    .unwrap();
    let pk = icos_sign::PublicKey::load(&pk_path).unwrap();
    let head = "untrusted comment: signature from minisign secret key\n\
        RURjzTKRhpL/BahjUTUfrjCcCPRfzY9a1X8EJLrvUYEg06Q88VKjgshkgPfp9rOFjvx31D9uLZAcxWK4mefIFFmY9Pxn5wJTHAY=\n\
        trusted comment: file:a.img\n";
    for (global, bytes) in [
        (
            "FUwQxUfW05pxraMQx80RNP5xU8ltBR7yfIH7uv9FWDDRhnyyG+bDXPsrFsbRjavVDg==",
            49,
        ),
        ("", 0),
    ] {
        let sig = format!("{head}{global}\n");
        let data = std::io::Cursor::new(b"hello\n");
        let err = icos_sign::minisig::verify_reader(&pk, &sig, data, "a.img", "a.img.minisig")
            .unwrap_err();
        assert!(matches!(err, SigProblem::Malformed { .. }), "{err:?}");
        let want = format!("the global signature (fourth line) is {bytes} bytes, not 64");
        assert!(err.to_string().contains(&want), "{err}");
    }
}
