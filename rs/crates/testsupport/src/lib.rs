//! Helpers shared by the tests of several crates. This crate is only ever a `[dev-dependencies]`
//! entry: nothing here may end up in a shipped binary.

use std::process::Command;

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
