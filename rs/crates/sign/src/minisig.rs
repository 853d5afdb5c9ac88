//! Minisign signature files (`FILE.minisig`): deterministic signing and verification.
//!
//! Format (minisign's, prehashed "ED" variant, what `minisign -S` writes by default):
//! ```text
//! untrusted comment: <text>
//! base64("ED" || key id (8) || Ed25519(BLAKE2b-512(file)))
//! trusted comment: <text>
//! base64(Ed25519(signature || trusted comment))
//! ```
//! The `minisign` crate signs with random noise added to the Ed25519 nonce (hedged signatures),
//! so its signatures differ on every run. Release files must be byte-reproducible, so we sign
//! with plain RFC 8032 Ed25519 (deterministic: same key + same file = same bytes) and write the
//! same format; the trusted comment is `file:NAME sha256:HEX` (no timestamp). Verification goes
//! through the `minisign` crate, and stock `minisign -V` accepts the files (tested).

use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use blake2::{Blake2b512, Digest as _};
use ct_codecs::{Base64, Decoder, Encoder};
use sha2::Sha256;

use icos_common::{open_regular, AtomicFile, Digest};

use crate::keys::{KeyId, PublicKey, SigningKey};

/// The suffix of a signature file.
pub const SIG_SUFFIX: &str = ".minisig";
const UNTRUSTED_COMMENT: &str = "signature from icos-sign secret key";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {path} to sign it: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot sign {path}: its file name is not printable UTF-8 without line breaks (the name goes into the trusted comment); rename it")]
    BadName { path: PathBuf },
    #[error("cannot write signature {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the signature just made for {path} does not verify with the key's own public key: the secret key file is corrupted")]
    SelfCheck { path: PathBuf },
}

/// Why one signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigProblem {
    #[error("signature {sig} is missing: sign {file} with `icos-sign sign`")]
    Missing { sig: String, file: String },
    #[error("signature {sig} is malformed ({reason}): re-sign {file}")]
    Malformed {
        sig: String,
        file: String,
        reason: String,
    },
    #[error("signature {sig} was made by key ID {sig_key}, but the public key has key ID {pub_key}: wrong key (verify with the release's public key)")]
    WrongKey {
        sig: String,
        file: String,
        sig_key: KeyId,
        pub_key: KeyId,
    },
    #[error(
        "signature {sig} does not match {file} ({reason}): {file} or its signature was modified"
    )]
    Invalid {
        sig: String,
        file: String,
        reason: String,
    },
    #[error("signature {sig} names file {named:?} in its trusted comment, not {file}: a signature of another file was put in its place")]
    WrongFile {
        sig: String,
        file: String,
        named: String,
    },
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// The trusted comment we put in every signature.
pub fn trusted_comment(name: &str, sha256: &Digest) -> String {
    format!("file:{name} sha256:{}", sha256.hex())
}

/// The signature file path for `file`: `file` + `.minisig`.
pub fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(SIG_SUFFIX);
    PathBuf::from(s)
}

/// Streams `reader` once, returning its BLAKE2b-512 prehash and sha256.
fn prehash(mut reader: impl Read) -> io::Result<([u8; 64], Digest)> {
    let mut b2 = Blake2b512::new();
    let mut s256 = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        b2.update(&buf[..n]);
        s256.update(&buf[..n]);
    }
    Ok((
        b2.finalize().into(),
        Digest::from_bytes(s256.finalize().into()),
    ))
}

/// The text of a signature of data with `prehash`, under `trusted_comment`.
pub(crate) fn signature_text(
    key: &SigningKey,
    prehash: &[u8; 64],
    trusted_comment: &str,
) -> String {
    let sig = key.sk.sign(prehash, None);
    let mut sig_and_comment = sig.to_vec();
    sig_and_comment.extend_from_slice(trusted_comment.as_bytes());
    let global = key.sk.sign(&sig_and_comment, None);
    let mut bones = Vec::with_capacity(74);
    bones.extend_from_slice(b"ED");
    bones.extend_from_slice(&key.id.0);
    bones.extend_from_slice(&sig[..]);
    format!(
        "untrusted comment: {UNTRUSTED_COMMENT}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
        Base64::encode_to_string(&bones).expect("base64 of 74 bytes"),
        Base64::encode_to_string(&global[..]).expect("base64 of 64 bytes"),
    )
}

/// Signs `file`, writing `file.minisig` (atomically); returns the signature path.
///
/// Deterministic: signing the same bytes with the same key gives the same signature file.
pub fn sign_file(key: &SigningKey, file: &Path) -> Result<PathBuf, SignError> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.chars().any(char::is_control))
        .ok_or_else(|| SignError::BadName { path: file.into() })?
        .to_owned();
    let f = open_regular(file).map_err(|source| SignError::Read {
        path: file.into(),
        source,
    })?;
    let (ph, sha) = prehash(f).map_err(|source| SignError::Read {
        path: file.into(),
        source,
    })?;
    let text = signature_text(key, &ph, &trusted_comment(&name, &sha));

    self_check(key, &text, &ph).map_err(|_| SignError::SelfCheck { path: file.into() })?;

    let out = sig_path(file);
    let write = || -> io::Result<()> {
        let mut f = AtomicFile::create(&out)?;
        f.write_all(text.as_bytes())?;
        f.commit()
    };
    write().map_err(|source| SignError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// Parses what we are about to write with the `minisign` crate and checks both signatures with the
/// key's public half, so a corrupted key never produces a signature file.
fn self_check(key: &SigningKey, text: &str, prehash: &[u8; 64]) -> Result<(), ()> {
    let sb = minisign::SignatureBox::from_string(text).map_err(|_| ())?;
    if sb.keynum() != key.id.0 || !sb.is_prehashed() {
        return Err(());
    }
    let pk = key.public_key();
    let mut lines = text.lines();
    let bones = lines.nth(1).ok_or(())?;
    let bones = Base64::decode_to_vec(bones, None).map_err(|_| ())?;
    let global = lines.nth(1).ok_or(())?;
    let global = Base64::decode_to_vec(global, None).map_err(|_| ())?;
    let sig = ed25519_compact::Signature::from_slice(bones.get(10..).ok_or(())?).map_err(|_| ())?;
    pk.pk.verify(prehash, &sig).map_err(|_| ())?;
    let mut sig_and_comment = sig.to_vec();
    sig_and_comment.extend_from_slice(sb.trusted_comment().map_err(|_| ())?.as_bytes());
    let global = ed25519_compact::Signature::from_slice(&global).map_err(|_| ())?;
    pk.pk.verify(&sig_and_comment, &global).map_err(|_| ())
}

/// Verifies the signature text `sig_text` (of the file called `sig_name`) over the bytes of
/// `data`, a file called `name`, through the `minisign` crate. Returns the trusted comment.
///
/// Beyond minisign's own checks: the signature must be prehashed (no legacy signatures), its key
/// id must be the public key's (a mismatch is reported as a wrong key, not as tampering), and a
/// trusted comment of ours (`file:NAME ...`) must name this file.
pub fn verify_reader(
    pk: &PublicKey,
    sig_text: &str,
    data: impl Read + Seek,
    name: &str,
    sig_name: &str,
) -> Result<String, SigProblem> {
    let malformed = |reason: String| SigProblem::Malformed {
        sig: sig_name.into(),
        file: name.into(),
        reason,
    };
    let sb = minisign::SignatureBox::from_string(sig_text).map_err(|e| malformed(e.to_string()))?;
    // minisign 0.10 slices the global signature as 64 bytes without checking its length, and
    // panics on a shorter one (found by fuzzing, rs/fuzz minisign): check it first, the way
    // from_string decoded it (fourth line, trimmed, base64).
    let global = sig_text.lines().nth(3).unwrap_or_default().trim();
    match Base64::decode_to_vec(global.as_bytes(), None) {
        Ok(g) if g.len() == 64 => {}
        Ok(g) => {
            return Err(malformed(format!(
                "the global signature (fourth line) is {} bytes, not 64",
                g.len()
            )))
        }
        Err(e) => return Err(malformed(format!("the global signature: {e}"))),
    }
    if !sb.is_prehashed() {
        return Err(malformed(
            "legacy (non-prehashed 'Ed') signatures are not accepted".into(),
        ));
    }
    let sig_id = KeyId(
        sb.keynum()
            .try_into()
            .map_err(|_| malformed("bad key id".into()))?,
    );
    if sig_id != pk.id {
        return Err(SigProblem::WrongKey {
            sig: sig_name.into(),
            file: name.into(),
            sig_key: sig_id,
            pub_key: pk.id,
        });
    }
    minisign::verify(&pk.to_minisign(), &sb, data, true, false, false).map_err(|e| {
        match e.kind() {
            minisign::ErrorKind::Io => SigProblem::Io {
                path: name.into(),
                reason: e.to_string(),
            },
            _ => SigProblem::Invalid {
                sig: sig_name.into(),
                file: name.into(),
                reason: e.to_string(),
            },
        }
    })?;
    let comment = sb.trusted_comment().map_err(|e| malformed(e.to_string()))?;
    if let Some(rest) = comment.strip_prefix("file:") {
        let named = rest.rsplit_once(" sha256:").map(|(n, _)| n).unwrap_or(rest);
        if named != name {
            return Err(SigProblem::WrongFile {
                sig: sig_name.into(),
                file: name.into(),
                named: named.into(),
            });
        }
    }
    Ok(comment)
}

/// Verifies `file` against `file.minisig`. Returns the trusted comment.
pub fn verify_file(pk: &PublicKey, file: &Path) -> Result<String, SigProblem> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sig = sig_path(file);
    let sig_name = format!("{name}{SIG_SUFFIX}");
    let text = match open_regular(&sig).and_then(io::read_to_string) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SigProblem::Missing {
                sig: sig_name,
                file: name,
            })
        }
        Err(e) => {
            return Err(SigProblem::Io {
                path: sig.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let data = open_regular(file).map_err(|e| SigProblem::Io {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    verify_reader(pk, &text, data, &name, &sig_name)
}
