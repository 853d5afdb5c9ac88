//! Minisign key pairs: generation, loading (ours and stock `minisign -G`), passwords.
//!
//! Key files are in minisign's format (scrypt `Sc` key derivation, BLAKE2b checksum), so stock
//! `minisign` reads ours and we read its. New encrypted keys cost what stock `minisign -G`'s cost
//! to brute-force ([`KdfLimits::MINISIGN_DEFAULT`]); keys are decrypted by the `minisign` crate,
//! whatever limits they were made with (up to minisign's own maximum, 1 GiB).
//! Nothing here prints, and no `Debug`/`Display` shows a password or secret key bytes.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use ct_codecs::{Base64, Decoder};
use zeroize::Zeroizing;

use icos_common::AtomicFile;

/// The environment variable a password is read from when no password file is given.
pub const PASSWORD_ENV: &str = "ICOS_SIGN_PASSWORD";

/// Untrusted comments written into key files (informational; minisign ignores them).
const SECRET_KEY_COMMENT_ENCRYPTED: &str = "icos-sign encrypted secret key";
const SECRET_KEY_COMMENT_UNENCRYPTED: &str = "icos-sign UNENCRYPTED secret key";

// Layout of a decoded minisign secret key: sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) ops(8) mem(8)
// keynum(8) sk(64) chk(32).
const SK_LEN: usize = 158;
const SK_KDF_ALG: std::ops::Range<usize> = 2..4;
const SK_SALT: std::ops::Range<usize> = 6..38;
const SK_OPSLIMIT: std::ops::Range<usize> = 38..46;
const SK_MEMLIMIT: std::ops::Range<usize> = 46..54;
/// What scrypt encrypts: key id, secret key and checksum.
const SK_ENCRYPTED: std::ops::RangeFrom<usize> = 54..;
const SK_KEYNUM: std::ops::Range<usize> = 54..62;
const SK_KEY: std::ops::Range<usize> = 62..126;
const SK_CHK: std::ops::Range<usize> = 126..158;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile { path: PathBuf, source: io::Error },
    #[error("the password (from {origin}) is empty: give a non-empty password, or pass --unencrypted to make a key without one on purpose")]
    EmptyPassword { origin: String },
    #[error("no password given: put it in a file and pass --password-file FILE, or set {PASSWORD_ENV}; pass --unencrypted to make a key without one on purpose")]
    NoPassword,
    #[error("a password was given ({origin}) together with --unencrypted: drop one of the two")]
    PasswordWithUnencrypted { origin: String },
    #[error("{path} already exists: pass --force to overwrite it (the old key is lost), or choose another path")]
    Exists { path: PathBuf },
    #[error("the secret and the public key paths are the same ({path}): give two different files")]
    SamePath { path: PathBuf },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("scrypt limits opslimit {opslimit}, memlimit {memlimit} are out of minisign's range (memlimit at most 1 GiB, N at most 2^20)")]
    BadLimits { opslimit: u64, memlimit: u64 },
    #[error("cannot read secret key {path}: {source}")]
    ReadSecret { path: PathBuf, source: io::Error },
    #[error("{path} is not a minisign secret key ({reason}): pass the file written by `icos-sign keygen` or `minisign -G` (the .key, not the .pub)")]
    BadSecretKey { path: PathBuf, reason: String },
    #[error("secret key {path} is encrypted: give its password with --password-file FILE or {PASSWORD_ENV}")]
    PasswordRequired { path: PathBuf },
    #[error("wrong password for secret key {path} (the decrypted key fails its checksum): check the password file or {PASSWORD_ENV}")]
    WrongPassword { path: PathBuf },
    #[error("cannot read public key {path}: {source}")]
    ReadPublic { path: PathBuf, source: io::Error },
    #[error("{path} is not a minisign public key ({reason}): pass the .pub file written by `icos-sign keygen` or `minisign -G`")]
    BadPublicKey { path: PathBuf, reason: String },
}

/// A secret key password. Its bytes never appear in `Debug` output and are wiped on drop.
#[derive(Clone)]
pub struct Password {
    secret: Zeroizing<String>,
    origin: String,
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password(<redacted>, from {})", self.origin)
    }
}

impl Password {
    /// A password given in memory; `origin` says where it came from (for error messages).
    pub fn new(secret: impl Into<String>, origin: impl Into<String>) -> Self {
        Password {
            secret: Zeroizing::new(secret.into()),
            origin: origin.into(),
        }
    }

    /// Reads a password file: the first line, without its line ending (as `minisign` reads a
    /// password from standard input).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| KeyError::PasswordFile {
                    path: path.into(),
                    source,
                })?,
            );
        let line = text.split('\n').next().unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        Ok(Password::new(
            line,
            format!("password file {}", path.display()),
        ))
    }

    /// The password from `file` if given, else from `ICOS_SIGN_PASSWORD` if set, else `None`.
    pub fn resolve(file: Option<&Path>) -> Result<Option<Self>, KeyError> {
        if let Some(path) = file {
            return Password::from_file(path).map(Some);
        }
        match std::env::var(PASSWORD_ENV) {
            Ok(v) => Ok(Some(Password::new(v, PASSWORD_ENV))),
            Err(_) => Ok(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }

    /// Where the password came from ("password file F" or the variable name); never the password.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn expose(&self) -> String {
        self.secret.as_str().to_owned()
    }
}

/// How `keygen` protects the secret key.
#[derive(Debug)]
pub enum Protection {
    /// scrypt-encrypted with this (non-empty) password, as `minisign -G` does.
    Password(Password),
    /// No password at all, as `minisign -G -W` does. Must be asked for explicitly.
    Unencrypted,
}

impl Protection {
    /// Combines the `--unencrypted` flag with a password that may have been given: refuses an empty
    /// or missing password without the flag, and a password together with it.
    pub fn choose(password: Option<Password>, unencrypted: bool) -> Result<Self, KeyError> {
        match (password, unencrypted) {
            (Some(p), true) => Err(KeyError::PasswordWithUnencrypted { origin: p.origin }),
            (None, true) => Ok(Protection::Unencrypted),
            (None, false) => Err(KeyError::NoPassword),
            (Some(p), false) if p.is_empty() => Err(KeyError::EmptyPassword { origin: p.origin }),
            (Some(p), false) => Ok(Protection::Password(p)),
        }
    }
}

/// The 8-byte minisign key id, printed as 16 uppercase hex digits like `minisign` does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl KeyId {
    fn from_slice(b: &[u8]) -> Self {
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[..8]);
        KeyId(id)
    }
}

/// The scrypt cost of a password-protected secret key, as minisign stores it in the key file:
/// libsodium's `opslimit` and `memlimit`, from which scrypt's N, r and p follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfLimits {
    pub opslimit: u64,
    pub memlimit: u64,
}

impl KdfLimits {
    /// What stock `minisign -G` writes (libsodium's "sensitive" scryptsalsa208sha256 limits):
    /// N = 2^20, r = 8, p = 1, 1 GiB of memory per guess.
    pub const MINISIGN_DEFAULT: KdfLimits = KdfLimits {
        opslimit: 33_554_432,
        memlimit: 1_073_741_824,
    };

    /// scrypt's parameters for these limits, derived as libsodium (and so stock minisign and the
    /// `minisign` crate) derives them; `None` past minisign's maximum (N > 2^20 or > 1 GiB).
    ///
    /// Written out here because the `minisign` crate only encrypts with its own, 32 times
    /// cheaper limits (opslimit 2^20, memlimit 32 MiB) and keeps this derivation private.
    pub fn scrypt_params(self) -> Option<scrypt::Params> {
        const R: u64 = 8;
        const N_LOG2_MAX: u8 = 20;
        if self.memlimit > 1 << 30 {
            return None;
        }
        let ops = self.opslimit.max(32_768);
        let mut n_log2 = 1u8;
        let p;
        if ops < self.memlimit / 32 {
            p = 1;
            let max_n = ops / (R * 4);
            while n_log2 < 63 && 1u64 << n_log2 <= max_n / 2 {
                n_log2 += 1;
            }
        } else {
            let max_n = self.memlimit / (R * 128);
            while n_log2 < 63 && 1u64 << n_log2 <= max_n / 2 {
                n_log2 += 1;
            }
            let max_rp = ((ops / 4) / (1u64 << n_log2)).min(0x3fff_ffff);
            p = (max_rp / R) as u32;
        }
        if n_log2 > N_LOG2_MAX {
            return None;
        }
        scrypt::Params::new(n_log2, R as u32, p, scrypt::Params::RECOMMENDED_LEN).ok()
    }
}

/// Writes a new key pair; returns its key id. Refuses to overwrite either file unless `force`.
/// A password-protected key gets stock `minisign -G`'s scrypt limits.
///
/// The public key is written through [`AtomicFile`]. The secret key is written the same way
/// (temporary file beside the target, renamed on success) but keeps mode 0600 throughout, which
/// `AtomicFile` (fixed 0644) cannot do.
pub fn keygen(
    secret_path: &Path,
    public_path: &Path,
    protection: &Protection,
    force: bool,
) -> Result<KeyId, KeyError> {
    keygen_with_limits(
        secret_path,
        public_path,
        protection,
        force,
        KdfLimits::MINISIGN_DEFAULT,
    )
}

/// [`keygen`] with the scrypt limits of a password-protected key chosen by the caller (tests use
/// cheap ones; releases use [`keygen`]).
pub fn keygen_with_limits(
    secret_path: &Path,
    public_path: &Path,
    protection: &Protection,
    force: bool,
    limits: KdfLimits,
) -> Result<KeyId, KeyError> {
    if secret_path == public_path {
        return Err(KeyError::SamePath {
            path: secret_path.into(),
        });
    }
    if !force {
        for p in [secret_path, public_path] {
            if fs::symlink_metadata(p).is_ok() {
                return Err(KeyError::Exists { path: p.into() });
            }
        }
    }
    let generate = |e: minisign::PError| KeyError::Generate(e.to_string());
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(generate)?;
    let (sk, comment) = match protection {
        Protection::Password(p) => (encrypt(&pair.sk, p, limits)?, SECRET_KEY_COMMENT_ENCRYPTED),
        Protection::Unencrypted => (pair.sk, SECRET_KEY_COMMENT_UNENCRYPTED),
    };
    let sk_text = Zeroizing::new(sk.to_box(Some(comment)).map_err(generate)?.into_string());
    let pk_text = pair.pk.to_box().map_err(generate)?.into_string();
    let id = KeyId::from_slice(pair.pk.keynum());
    // Note: the minisign crate does not wipe its key types on drop; ours (Zeroizing) are wiped.

    write_secret(secret_path, sk_text.as_bytes(), force)?;
    let write_pk = || -> io::Result<()> {
        let mut f = AtomicFile::create(public_path)?;
        f.write_all(pk_text.as_bytes())?;
        f.commit_durable() // a new key cannot be made again
    };
    write_pk().map_err(|source| KeyError::Write {
        path: public_path.into(),
        source,
    })?;
    Ok(id)
}

/// Encrypts an unencrypted secret key as minisign does: a random salt, scrypt(password, salt)
/// XORed over key id, key and checksum (which covers the plaintext, so it stays as it is).
fn encrypt(
    sk: &minisign::SecretKey,
    password: &Password,
    limits: KdfLimits,
) -> Result<minisign::SecretKey, KeyError> {
    let params = limits.scrypt_params().ok_or(KeyError::BadLimits {
        opslimit: limits.opslimit,
        memlimit: limits.memlimit,
    })?;
    let mut raw = Zeroizing::new(sk.to_bytes());
    raw[SK_KDF_ALG].copy_from_slice(b"Sc");
    getrandom::fill(&mut raw[SK_SALT])
        .map_err(|e| KeyError::Generate(format!("no random salt: {e}")))?;
    raw[SK_OPSLIMIT].copy_from_slice(&limits.opslimit.to_le_bytes());
    raw[SK_MEMLIMIT].copy_from_slice(&limits.memlimit.to_le_bytes());
    let mut stream = Zeroizing::new(vec![0u8; SK_LEN - SK_ENCRYPTED.start]);
    scrypt::scrypt(
        password.secret.as_bytes(),
        &raw[SK_SALT],
        &params,
        &mut stream,
    )
    .map_err(|e| KeyError::Generate(format!("scrypt: {e}")))?;
    for (b, k) in raw[SK_ENCRYPTED].iter_mut().zip(stream.iter()) {
        *b ^= k;
    }
    minisign::SecretKey::from_bytes(&raw).map_err(|e| KeyError::Generate(e.to_string()))
}

fn write_secret(path: &Path, bytes: &[u8], force: bool) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.into(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // tempfile creates the file with mode 0600.
    let mut temp = tempfile::Builder::new()
        .prefix(".icos-sign-key.")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(err)?;
    temp.write_all(bytes).map_err(err)?;
    temp.as_file().sync_all().map_err(err)?;
    if force {
        temp.persist(path).map_err(|e| err(e.error))?;
    } else {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists { path: path.into() }
            } else {
                err(e.error)
            }
        })?;
    }
    Ok(())
}

/// A decrypted secret key, ready to sign. `Debug` shows the key id only.
pub struct SigningKey {
    pub(crate) id: KeyId,
    pub(crate) sk: ed25519_compact::SecretKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey {{ id: {}, .. }}", self.id)
    }
}

impl SigningKey {
    /// Loads a minisign secret key (ours or stock `minisign -G`, encrypted or `-W`).
    ///
    /// An encrypted key needs `password`; an unencrypted key ignores it.
    pub fn load(path: &Path, password: Option<&Password>) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| KeyError::ReadSecret {
                    path: path.into(),
                    source,
                })?,
            );
        let bad = |reason: &str| KeyError::BadSecretKey {
            path: path.into(),
            reason: reason.into(),
        };
        let mut lines = text.lines();
        let comment = lines.next().ok_or_else(|| bad("the file is empty"))?;
        if !comment.starts_with("untrusted comment: ") {
            return Err(bad("the first line is not an 'untrusted comment:' line"));
        }
        let encoded = lines.next().ok_or_else(|| bad("the key line is missing"))?;
        let raw = Zeroizing::new(
            Base64::decode_to_vec(encoded.trim(), None)
                .map_err(|_| bad("the key line is not base64"))?,
        );
        if raw.len() != SK_LEN {
            return Err(bad(&format!(
                "the key is {} bytes, a minisign secret key has {SK_LEN}",
                raw.len()
            )));
        }
        if &raw[0..2] != b"Ed" {
            return Err(bad("the signature algorithm is not Ed25519 ('Ed')"));
        }
        let bytes = match &raw[2..4] {
            b"Sc" => {
                let pw =
                    password.ok_or_else(|| KeyError::PasswordRequired { path: path.into() })?;
                let sk_box =
                    minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(&e.to_string()))?;
                let decrypted = minisign::SecretKey::from_box(sk_box, Some(pw.expose())).map_err(
                    |e| match e.kind() {
                        minisign::ErrorKind::Verify => {
                            KeyError::WrongPassword { path: path.into() }
                        }
                        minisign::ErrorKind::KDF => KeyError::BadLimits {
                            opslimit: u64::from_le_bytes(
                                raw[SK_OPSLIMIT].try_into().expect("8 bytes"),
                            ),
                            memlimit: u64::from_le_bytes(
                                raw[SK_MEMLIMIT].try_into().expect("8 bytes"),
                            ),
                        },
                        _ => bad(&e.to_string()),
                    },
                )?;
                Zeroizing::new(decrypted.to_bytes())
            }
            [0, 0] => {
                // Unencrypted (`minisign -G -W`). Stock minisign 0.11 leaves the checksum all zero
                // for these keys, which the minisign crate rejects as corrupted; check it when it
                // is set, and in every case check below that the public half derives from the seed.
                let chk = &raw[SK_CHK];
                if chk.iter().any(|&b| b != 0) {
                    let mut h = Blake2b::<U32>::new();
                    h.update(&raw[0..2]);
                    h.update(&raw[SK_KEYNUM]);
                    h.update(&raw[SK_KEY]);
                    if h.finalize().as_slice() != chk {
                        return Err(bad("the checksum does not match (corrupted key)"));
                    }
                }
                raw.clone()
            }
            _ => {
                return Err(bad(
                    "unknown key derivation algorithm (neither scrypt 'Sc' nor none)",
                ))
            }
        };
        let id = KeyId::from_slice(&bytes[SK_KEYNUM]);
        let sk = ed25519_compact::SecretKey::from_slice(&bytes[SK_KEY])
            .map_err(|_| bad("the key has the wrong length"))?;
        sk.validate_public_key(&sk.public_key()).map_err(|_| {
            bad("the embedded public key does not match the secret key (corrupted key)")
        })?;
        Ok(SigningKey { id, sk })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            pk: self.sk.public_key(),
        }
    }
}

/// A minisign public key.
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) id: KeyId,
    pub(crate) pk: ed25519_compact::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey {{ id: {} }}", self.id)
    }
}

impl PublicKey {
    /// Loads a minisign public key file (`untrusted comment:` line, then the base64 key).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::ReadPublic {
            path: path.into(),
            source,
        })?;
        let bad = |reason: String| KeyError::BadPublicKey {
            path: path.into(),
            reason,
        };
        if !text.starts_with("untrusted comment: ") {
            return Err(bad(
                "the first line is not an 'untrusted comment:' line".into()
            ));
        }
        let parsed = minisign::PublicKeyBox::from_string(&text)
            .and_then(minisign::PublicKey::from_box)
            .map_err(|e| bad(e.to_string()))?;
        let bytes = parsed.to_bytes();
        if bytes.len() != 42 || &bytes[0..2] != b"Ed" {
            return Err(bad("not an Ed25519 ('Ed') key".into()));
        }
        let pk = ed25519_compact::PublicKey::from_slice(&bytes[10..42])
            .map_err(|_| bad("bad key length".into()))?;
        Ok(PublicKey {
            id: KeyId::from_slice(&bytes[2..10]),
            pk,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The `minisign` crate's view of this key (for verification through the crate).
    pub(crate) fn to_minisign(&self) -> minisign::PublicKey {
        let mut b = Vec::with_capacity(42);
        b.extend_from_slice(b"Ed");
        b.extend_from_slice(&self.id.0);
        b.extend_from_slice(&self.pk[..]);
        minisign::PublicKey::from_bytes(&b).expect("42 bytes always parse")
    }
}
