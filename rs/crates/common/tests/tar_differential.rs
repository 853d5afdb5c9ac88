//! Randomized differential test of the shared tar reader against Python's `tarfile`: random
//! archives (ustar, PAX records for long names, ids, times, sizes and xattrs with any byte, GNU
//! long names, base-256 ids), some of them broken (a corrupt header, a truncation, a wrong PAX
//! record length, a PAX record without '=', a non-numeric PAX number, garbage after the end), are
//! read by both; the verdicts (valid or not) and the listings (path, type, size, uid, gid, mtime,
//! link, xattrs, data hash) must agree, except where our reader is stricter by design:
//!
//! 1. A corrupt or truncated header after the first one: `tarfile` (3.11) takes it as the end of
//!    the archive and lists what came before; we refuse the archive (a layer cut short must not
//!    build a smaller image silently). Rule checked: `tarfile` lists exactly the entries we read
//!    before the error.
//! 2. A PAX number that is not a number (`uid=abc`): `tarfile` reads 0 (root!); we refuse it.
//! 3. A uid or gid of 2^32 or more: `tarfile` keeps it; we refuse it (Linux ids are 32-bit, and
//!    a truncated 2^32 would be root).
//!
//! 4. A PAX record whose length does not end at its newline, or without '=': tarfile (3.11)
//!    finds records with a regular expression and skips what it cannot parse; we refuse the
//!    archive (the length is the framing: a record that disagrees with it could hide another).
//!
//! Every other disagreement fails the test. Cases: `PROPTEST_CASES` (default 32).

use std::io::{Read, Write};
use std::process::Command;

use icos_common::tarread::{RawEntry, TarReader};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, FileFailurePersistence};

const PYTHON_LISTER: &str = r#"
import hashlib, os, sys, tarfile
def h(b): return b.hex()
try:
    with tarfile.open(sys.argv[1], mode="r:", encoding="utf-8", errors="surrogateescape") as t:
        out = []
        for m in t:
            data = b""
            if m.isreg():
                data = t.extractfile(m).read()
                if len(data) != m.size:
                    raise tarfile.ReadError("short data")
            name = os.fsencode(m.name)
            xattrs = sorted((os.fsencode(k[len("SCHILY.xattr."):]), v.encode("utf-8", "surrogateescape"))
                            for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
            out.append(" ".join([h(name), m.type.decode(), str(m.size), str(m.uid), str(m.gid),
                                 str(int(m.mtime)), h(os.fsencode(m.linkname)),
                                 ",".join(h(k) + ":" + h(v) for k, v in xattrs),
                                 hashlib.sha256(data).hexdigest()]))
    print("OK"); print("\n".join(out))
except Exception as e:
    print("ERR " + type(e).__name__ + ": " + str(e))
"#;

#[derive(Clone, Debug)]
struct GenEntry {
    name: Vec<u8>,
    typeflag: u8,
    data_len: usize,
    uid: u64,
    gid: u64,
    mtime: u64,
    pax_ids: bool,
    gnu_long_name: bool,
    xattrs: Vec<(String, Vec<u8>)>,
    link: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Damage {
    None,
    /// One byte of a header block changed, its checksum left as it was.
    CorruptHeader(Index, u8),
    Truncate(Index),
    DropEndMarker,
    TrailingGarbage(usize),
    /// A PAX record whose length is off by this much.
    PaxLengthOff(i8),
    PaxNoEquals,
    PaxUidNotANumber,
}

fn entry() -> impl Strategy<Value = GenEntry> {
    let name = prop_oneof![1..=20usize, 95..=105usize, 150..=300usize]
        .prop_flat_map(|n| prop::collection::vec(select(b"abz09._-/\xc3\xa9 \n=".to_vec()), n));
    let id = prop_oneof![
        0..70_000u64,
        Just((1 << 21) - 1),
        Just(1 << 21),
        Just(u64::from(u32::MAX)),
        Just(1 << 32)
    ];
    (
        name,
        select(b"0552136".to_vec()),
        prop_oneof![Just(0usize), 1..=1100usize],
        (id.clone(), id),
        prop_oneof![
            0..2_000_000_000u64,
            Just(8u64.pow(11) - 1),
            Just(8u64.pow(11))
        ],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(
            (
                select(vec!["user.a", "security.capability", "user.x=y"]),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..=2,
        ),
        prop::collection::vec(select(b"ab/.\n".to_vec()), 0..=120),
    )
        .prop_map(
            |(
                name,
                typeflag,
                data_len,
                (uid, gid),
                mtime,
                pax_ids,
                gnu_long_name,
                xattrs,
                link,
            )| {
                let mut name: Vec<u8> = name.into_iter().filter(|&b| b != 0).collect();
                name.retain(|&b| b != b'\n' || !gnu_long_name);
                if name.iter().all(|&b| b == b'/') {
                    name.insert(0, b'n');
                }
                GenEntry {
                    name,
                    typeflag,
                    data_len: if typeflag == b'0' { data_len } else { 0 },
                    uid,
                    gid,
                    mtime,
                    pax_ids,
                    gnu_long_name,
                    xattrs: xattrs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    link: if matches!(typeflag, b'1' | b'2') {
                        [b"l".as_slice(), &link].concat()
                    } else {
                        Vec::new()
                    },
                }
            },
        )
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::CorruptHeader(i, b)),
        2 => any::<Index>().prop_map(Damage::Truncate),
        1 => Just(Damage::DropEndMarker),
        1 => (1..3000usize).prop_map(Damage::TrailingGarbage),
        1 => prop_oneof![Just(-1i8), Just(1), Just(-5)].prop_map(Damage::PaxLengthOff),
        1 => Just(Damage::PaxNoEquals),
        1 => Just(Damage::PaxUidNotANumber),
    ]
}

fn pax(key: &str, value: &[u8]) -> Vec<u8> {
    icos_testsupport::pax_record(key, value)
}

fn header(name: &[u8], typeflag: u8, size: u64, e: Option<&GenEntry>, gnu: bool) -> tar::Header {
    let mut h = if gnu {
        tar::Header::new_gnu()
    } else {
        tar::Header::new_ustar()
    };
    {
        let old = h.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name[..n]);
        if let Some(e) = e {
            let l = e.link.len().min(100);
            old.linkname[..l].copy_from_slice(&e.link[..l]);
        }
    }
    h.set_entry_type(tar::EntryType::new(typeflag));
    h.set_size(size);
    h.set_mode(0o644);
    let (uid, gid, mtime) = e.map_or((0, 0, 0), |e| {
        if e.pax_ids {
            (0, 0, e.mtime.min(8u64.pow(11) - 1))
        } else {
            (e.uid, e.gid, e.mtime)
        }
    });
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h.set_cksum();
    h
}

fn push(out: &mut Vec<u8>, headers: &mut Vec<usize>, h: &tar::Header, data: &[u8]) {
    headers.push(out.len());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The archive's bytes.
fn build(entries: &[GenEntry], damage: &Damage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut headers = Vec::new();
    let mut pax_damaged = false;
    for (i, e) in entries.iter().enumerate() {
        let mut records = Vec::new();
        if e.name.len() > 100 && !e.gnu_long_name {
            records.extend(pax("path", &e.name));
        }
        if e.link.len() > 100 {
            records.extend(pax("linkpath", &e.link));
        }
        if e.pax_ids || e.uid >= 1 << 32 || e.gid >= 1 << 32 {
            records.extend(pax("uid", e.uid.to_string().as_bytes()));
            records.extend(pax("gid", e.gid.to_string().as_bytes()));
            records.extend(pax("mtime", format!("{}.5", e.mtime).as_bytes()));
        }
        for (k, v) in &e.xattrs {
            records.extend(pax(&format!("SCHILY.xattr.{k}"), v));
        }
        if i == 0 && !pax_damaged {
            pax_damaged = true;
            match damage {
                Damage::PaxLengthOff(d) => {
                    let r = pax("comment", b"hello");
                    let len = (r.len() as i64 + i64::from(*d)).to_string();
                    records.extend(len.as_bytes());
                    records.extend(&r[r.iter().position(|&b| b == b' ').unwrap()..]);
                }
                Damage::PaxNoEquals => records.extend(b"12 comment\n"),
                Damage::PaxUidNotANumber => records.extend(pax("uid", b"abc")),
                _ => {}
            }
        }
        if e.gnu_long_name && e.name.len() > 100 {
            let mut n = e.name.clone();
            n.push(0);
            push(
                &mut out,
                &mut headers,
                &header(b"././@LongLink", b'L', n.len() as u64, None, true),
                &n,
            );
        }
        if !records.is_empty() {
            push(
                &mut out,
                &mut headers,
                &header(b"PaxHeaders/x", b'x', records.len() as u64, None, false),
                &records,
            );
        }
        let data = icos_testsupport::noise(e.data_len, i as u64 + 1);
        push(
            &mut out,
            &mut headers,
            &header(
                &e.name,
                e.typeflag,
                data.len() as u64,
                Some(e),
                e.gnu_long_name,
            ),
            &data,
        );
    }
    let end = out.len();
    out.extend_from_slice(&[0u8; 1024]);
    match damage {
        Damage::CorruptHeader(i, b) if !headers.is_empty() => {
            let at = headers[i.index(headers.len())] + (*b as usize % 100);
            out[at] = out[at].wrapping_add(1 + b % 200);
        }
        Damage::Truncate(i) => out.truncate(i.index(out.len() + 1)),
        Damage::DropEndMarker => out.truncate(end),
        Damage::TrailingGarbage(n) => out.extend(icos_testsupport::noise(*n, 9)),
        _ => {}
    }
    out
}

/// One listing line, in the Python script's format.
fn line(e: &RawEntry, data: &[u8]) -> Result<String, String> {
    use sha2::Digest as _;
    let mut name = e.path.clone();
    // tarfile strips the trailing slashes of a directory's name, and of any PAX `path` (3.11's
    // `_apply_pax_info`): a spelling, not a disagreement about the entry.
    let strip = e.typeflag == b'5' || e.pax_value(b"path").is_some();
    while strip && name.len() > 1 && name.ends_with(b"/") {
        name.pop();
    }
    // A repeated record: the later one wins, in tarfile as in `RawEntry::pax_value` (our
    // writers then refuse a repeated xattr outright).
    let xattrs: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
        e.xattrs().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    Ok(format!(
        "{} {} {} {} {} {} {} {} {}",
        hex::encode(&name),
        e.typeflag as char,
        e.size,
        e.uid()?,
        e.gid()?,
        e.mtime()?,
        hex::encode(e.link.as_deref().unwrap_or_default()),
        xattrs
            .iter()
            .map(|(k, v)| format!("{}:{}", hex::encode(k), hex::encode(v)))
            .collect::<Vec<_>>()
            .join(","),
        hex::encode(sha2::Sha256::digest(data))
    ))
}

/// Our reader's listing so far, and its error if it refused the archive.
fn ours(bytes: &[u8]) -> (Vec<String>, Option<String>) {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    loop {
        let e = match r.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(err) => return (out, Some(err.to_string())),
        };
        let mut data = Vec::new();
        if e.typeflag == b'0' {
            if let Err(err) = r.data().read_to_end(&mut data) {
                return (out, Some(err.to_string()));
            }
            if data.len() as u64 != e.size {
                return (
                    out,
                    Some("the tar ends inside an entry's data: it is truncated".into()),
                );
            }
        }
        match line(&e, &data) {
            Ok(l) => out.push(l),
            Err(err) => return (out, Some(err)),
        }
    }
    if let Err(err) = r.finish() {
        return (out, Some(err.to_string()));
    }
    (out, None)
}

fn python(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    let out = Command::new("python3")
        .args(["-c", PYTHON_LISTER])
        .arg(f.path())
        .output()
        .expect("python3 (apt-get install python3) runs the reference tar reader");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    match lines.next() {
        Some("OK") => Ok(lines
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Some(err) => Err(err.to_string()),
        None => panic!(
            "the Python lister failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn compare(bytes: &[u8], damage: &Damage) -> Result<(), String> {
    let (listing, err) = ours(bytes);
    let theirs = python(bytes);
    match (err, theirs) {
        (None, Ok(t)) if t == listing => Ok(()),
        (None, Ok(t)) => Err(format!(
            "listings differ:\nours   {listing:#?}\npython {t:#?}"
        )),
        (Some(_), Err(_)) => Ok(()),
        (None, Err(t)) => Err(format!(
            "we accept an archive tarfile refuses ({t}): {listing:#?}"
        )),
        // Rule 1: a bad header later in the archive is the end for tarfile.
        (Some(e), Ok(t)) if (e.contains("checksum") || e.contains("truncated")) && t == listing => {
            Ok(())
        }
        // Rules 2 and 3.
        (Some(e), Ok(_))
            if matches!(damage, Damage::PaxUidNotANumber) && e.contains("not a number") =>
        {
            Ok(())
        }
        (Some(e), Ok(_)) if e.contains("does not fit in 32 bits") => Ok(()),
        // Rule 4.
        (Some(e), Ok(_))
            if matches!(damage, Damage::PaxLengthOff(_) | Damage::PaxNoEquals)
                && e.starts_with("PAX record at byte") =>
        {
            Ok(())
        }
        (Some(e), Ok(t)) => Err(format!(
            "we refuse ({e}) an archive tarfile reads:\nours so far {listing:#?}\npython {t:#?}"
        )),
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    Config {
        cases,
        // Each case runs Python: bound the shrinking.
        max_shrink_time: 60_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn our_tar_reader_agrees_with_python_tarfile(
        entries in prop::collection::vec(entry(), 1..=6),
        damage in damage(),
    ) {
        let bytes = build(&entries, &damage);
        if let Err(why) = compare(&bytes, &damage) {
            prop_assert!(false, "{damage:?}: {why}");
        }
    }
}
