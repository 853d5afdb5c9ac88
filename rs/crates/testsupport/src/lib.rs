//! Helpers shared by the tests of several crates. This crate is only ever a `[dev-dependencies]`
//! entry: nothing here may end up in a shipped binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One PAX record, written by hand: `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits. Values may hold any byte, newlines and `=` included.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    [format!("{len} {key}=").as_bytes(), value, b"\n"].concat()
}

/// Appends one ustar entry to a tar built block by block: a header whose name field holds `name`
/// verbatim (at most 100 bytes; no PAX or GNU long name is added), `mode`, uid/gid 0 and
/// `mtime`, then `data` padded with zeros to a 512-byte boundary. The caller adds the
/// end-of-archive marker.
pub fn push_ustar(
    tar: &mut Vec<u8>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    data: &[u8],
) {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// `len` deterministic pseudo-random bytes from an xorshift generator seeded with `seed` (test
/// data that does not compress, without a rand crate).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs a stock checker (fsck.fat, sgdisk, tar, …) set up in `cmd` (program, arguments, extra
/// environment) with `LC_ALL=C`, and returns whether it succeeded and its stdout followed by its
/// stderr. Fails (never skips) when the program is missing, naming the apt `package` to install.
pub fn run_checker(cmd: &mut Command, package: &str) -> (bool, String) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.env("LC_ALL", "C").output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install it with `apt-get install {package}`")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A stand-in for a bzImage with EFI stub: noise, with the DOS/PE headers of an x86-64 EFI
/// image whose MajorImageVersion is 1 (kernel EFI stub 1.0) and the bzImage setup header (boot
/// protocol 2.15, relocatable, 64-bit handover, cmdline_size 2047), where a real one has them.
pub fn fake_kernel(len: usize, seed: u64) -> Vec<u8> {
    assert!(len >= 0x300);
    let mut k = noise(len, seed);
    k[0..2].copy_from_slice(b"MZ");
    k[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    let pe = 0x80;
    k[pe..pe + 4].copy_from_slice(b"PE\0\0");
    k[pe + 4..pe + 6].copy_from_slice(&0x8664u16.to_le_bytes()); // machine
    k[pe + 6..pe + 8].copy_from_slice(&1u16.to_le_bytes()); // sections
    k[pe + 20..pe + 22].copy_from_slice(&112u16.to_le_bytes()); // SizeOfOptionalHeader
    let opt = pe + 24;
    k[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    k[opt + 44..opt + 46].copy_from_slice(&1u16.to_le_bytes()); // MajorImageVersion
    k[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x234] = 1;
    k[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    k[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    k
}

/// The systemd-boot-efi package the UKI is built from, as pinned in
/// `toolchains/debian/packages.bzl` (`debian_systemd_boot_efi`).
pub const SYSTEMD_BOOT_EFI_VERSION: &str = "252.39-1~deb12u2";
/// The sha256 of that package's .deb, from the same pin.
pub const SYSTEMD_BOOT_EFI_DEB_SHA256: &str =
    "8f2b81bdcfafc466882a0cae460272dbf10d8d97c6a3c1c6ea33038c155a2f5e";

/// A file of the pinned systemd-boot-efi package (`linuxx64.efi.stub`, `systemd-bootx64.efi`),
/// from `usr/lib/systemd/boot/efi/`. The package comes, verified against its pinned sha256, from
/// apt's cache (`/var/cache/apt/archives`) or else from `apt-get download`, and is unpacked once
/// into `icos-test-cache/` under the target directory. Returns None, after printing why and the
/// command that fixes it, only when neither a cached copy nor the mirror is available: callers
/// skip their test then.
pub fn systemd_boot_efi_file(name: &str) -> Option<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(unpack_systemd_boot_efi) {
        Ok(dir) => Some(dir.join("usr/lib/systemd/boot/efi").join(name)),
        Err(why) => {
            eprintln!(
                "skipping: the pinned systemd-boot-efi {SYSTEMD_BOOT_EFI_VERSION} is not available ({why}); fetch it with `apt-get download systemd-boot-efi={SYSTEMD_BOOT_EFI_VERSION}` (into /var/cache/apt/archives, or run the tests with network)"
            );
            None
        }
    }
}

/// systemd's `linuxx64.efi.stub` from the pinned package (see [`systemd_boot_efi_file`]).
pub fn systemd_stub() -> Option<PathBuf> {
    systemd_boot_efi_file("linuxx64.efi.stub")
}

/// `target/icos-test-cache` for the test binary running now (`target/<profile>/deps/<test>`).
pub fn test_cache_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|target| target.is_dir())
        .unwrap_or_else(std::env::temp_dir)
        .join("icos-test-cache")
}

fn sha256_hex(path: &Path) -> Option<String> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(hex::encode(h.finalize()))
}

fn unpack_systemd_boot_efi() -> Result<PathBuf, String> {
    let cache = test_cache_dir();
    let dir = cache.join(format!("systemd-boot-efi_{SYSTEMD_BOOT_EFI_VERSION}"));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let deb_name = format!("systemd-boot-efi_{SYSTEMD_BOOT_EFI_VERSION}_amd64.deb");
    let verified = |p: &Path| sha256_hex(p).as_deref() == Some(SYSTEMD_BOOT_EFI_DEB_SHA256);
    let apt_cached = Path::new("/var/cache/apt/archives").join(&deb_name);
    let ours = cache.join(&deb_name);
    let deb = if verified(&apt_cached) {
        apt_cached
    } else {
        if !verified(&ours) {
            let scratch = tempdir_in(&cache)?;
            let out = Command::new("apt-get")
                .args([
                    "download",
                    &format!("systemd-boot-efi={SYSTEMD_BOOT_EFI_VERSION}"),
                ])
                .current_dir(&scratch)
                .output()
                .map_err(|e| format!("cannot run apt-get: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "apt-get download failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let got = scratch.join(&deb_name);
            if !verified(&got) {
                return Err(format!(
                    "the downloaded {deb_name} does not have the pinned sha256 {SYSTEMD_BOOT_EFI_DEB_SHA256}"
                ));
            }
            std::fs::rename(&got, &ours).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&scratch);
        }
        ours
    };
    // Unpack beside the final directory and rename, so concurrent test binaries never see half.
    let scratch = tempdir_in(&cache)?;
    let (ok, text) = run_checker(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&scratch),
        "dpkg",
    );
    if !ok {
        return Err(format!("dpkg-deb -x {} failed: {text}", deb.display()));
    }
    std::fs::write(scratch.join(".complete"), b"").map_err(|e| e.to_string())?;
    if std::fs::rename(&scratch, &dir).is_err() {
        // Another test binary finished first.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if dir.join(".complete").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "cannot unpack {} into {}",
            deb.display(),
            dir.display()
        ))
    }
}

/// A fresh directory inside `parent` (no tempfile dependency here: this crate stays small).
fn tempdir_in(parent: &Path) -> Result<PathBuf, String> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = parent.join(format!(".tmp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        // 98 bytes without the length: two digits would make 100, which needs three.
        let r = pax_record("k", &[b'x'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 k="));
    }

    #[test]
    fn push_ustar_pads_to_blocks() {
        let mut t = Vec::new();
        push_ustar(&mut t, "./a", tar::EntryType::Regular, 0o644, 0, b"hello");
        assert_eq!(t.len(), 1024);
        assert_eq!(&t[..3], b"./a");
        assert_eq!(&t[512..517], b"hello");
    }
}
