//! A header-only tar reader: yields each entry's metadata and the offset of its data, seeking
//! over the data itself.
//!
//! Why not `tar::Archive`: its PAX parser splits records at newlines instead of honouring the
//! length prefix, so binary `SCHILY.xattr.*` values (a `security.capability` may contain 0x0A)
//! fail to parse, and it takes EOF at a header boundary for a complete archive. `tar::Header`
//! still decodes the header fields (octal and base-256 numbers, ustar prefix).

use std::io::{self, Read, Seek, SeekFrom};

use tar::{EntryType, Header};

/// Extension headers larger than this are refused (hostile input must not exhaust memory).
const MAX_EXTENSION: u64 = 1 << 20;

pub struct RawEntry {
    pub header: Header,
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub size: u64,
    /// Offset of the entry's data in the tar.
    pub data_pos: u64,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// (full name, value) from `SCHILY.xattr.NAME` records, in record order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// PAX keys this writer refuses (sparse files, ACL text forms, libarchive xattrs).
    pub refused_keys: Vec<String>,
}

pub enum ReadError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

pub struct TarReader<R> {
    r: R,
    /// Where the reader is.
    at: u64,
    /// Where the next header starts.
    next: u64,
}

fn bad<T>(s: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Bad(s.into()))
}

/// Parses `LEN KEY=VALUE\n` records, honouring LEN (values may hold any byte).
/// (key, value) of one PAX record.
type Record<'a> = (&'a [u8], &'a [u8]);

fn pax_records(mut data: &[u8]) -> Result<Vec<Record<'_>>, ReadError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(sp) = data.iter().take(21).position(|&b| b == b' ') else {
            return bad("a PAX record does not start with its length");
        };
        let len: usize = match std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(l) => l,
            None => return bad("a PAX record length is not a decimal number"),
        };
        if len < sp + 3 || len > data.len() || data[len - 1] != b'\n' {
            return bad("a PAX record length does not match its contents");
        }
        let kv = &data[sp + 1..len - 1];
        let Some(eq) = kv.iter().position(|&b| b == b'=') else {
            return bad("a PAX record has no '='");
        };
        out.push((&kv[..eq], &kv[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

fn pax_number(key: &[u8], v: &[u8]) -> Result<u64, ReadError> {
    let s = std::str::from_utf8(v).unwrap_or("");
    // mtime may carry a fraction; only whole seconds are kept.
    let int = if key == b"mtime" {
        s.split('.').next().unwrap_or("")
    } else {
        s
    };
    if int.starts_with('-') {
        return bad(format!(
            "PAX {} {s:?} is negative (times before 1970 are not supported)",
            String::from_utf8_lossy(key)
        ));
    }
    int.parse().map_err(|_| {
        ReadError::Bad(format!(
            "PAX {} {s:?} is not a number",
            String::from_utf8_lossy(key)
        ))
    })
}

impl<R: Read + Seek> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader { r, at: 0, next: 0 }
    }

    pub fn into_inner(self) -> R {
        self.r
    }

    fn seek_to(&mut self, pos: u64) -> io::Result<()> {
        if pos != self.at {
            self.r
                .seek(SeekFrom::Current(pos as i64 - self.at as i64))?;
            self.at = pos;
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at the current position; returns how many (short only at EOF).
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.at += got as u64;
        Ok(got)
    }

    fn read_extension(&mut self, size: u64, what: &str) -> Result<Vec<u8>, ReadError> {
        if size > MAX_EXTENSION {
            return bad(format!(
                "a {what} of {size} bytes is larger than the {MAX_EXTENSION} bytes accepted"
            ));
        }
        let mut v = vec![0u8; size as usize];
        if self.read_full(&mut v)? < v.len() {
            return bad(format!("the tar ends inside a {what}: it is truncated"));
        }
        self.next += size.div_ceil(512) * 512;
        Ok(v)
    }

    /// The next entry, or None at the end-of-archive marker (a zero block).
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>, ReadError> {
        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let start = self.next;
            self.seek_to(start)?;
            let mut block = [0u8; 512];
            match self.read_full(&mut block)? {
                0 => return bad("the tar ends without its end-of-archive marker: it is truncated"),
                512 => {}
                _ => return bad("the tar ends inside a header: it is truncated"),
            }
            if block.iter().all(|&b| b == 0) {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return bad("an extension header is not followed by an entry");
                }
                return Ok(None);
            }
            let mut header = Header::new_old();
            header.as_mut_bytes().copy_from_slice(&block);
            let sum: u32 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        b as u32
                    }
                })
                .sum();
            if header.cksum().ok() != Some(sum) {
                return bad(format!(
                    "the header at byte {start} has a wrong checksum: not a tar, or corrupt"
                ));
            }
            let header_size = header
                .entry_size()
                .map_err(|e| ReadError::Bad(format!("bad size field: {e}")))?;
            self.next = start + 512;
            match header.entry_type() {
                EntryType::XHeader => {
                    if pax.is_some() {
                        return bad("two PAX headers describe the same entry");
                    }
                    pax = Some(self.read_extension(header_size, "PAX header")?);
                    continue;
                }
                EntryType::GNULongName => {
                    let mut v = self.read_extension(header_size, "GNU long name")?;
                    while v.last() == Some(&0) {
                        v.pop();
                    }
                    long_name = Some(v);
                    continue;
                }
                EntryType::GNULongLink => {
                    let mut v = self.read_extension(header_size, "GNU long link name")?;
                    while v.last() == Some(&0) {
                        v.pop();
                    }
                    long_link = Some(v);
                    continue;
                }
                _ => {}
            }
            let mut e = RawEntry {
                path: long_name
                    .take()
                    .unwrap_or_else(|| header.path_bytes().into_owned()),
                link: long_link
                    .take()
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned())),
                size: header_size,
                data_pos: self.next,
                uid: header
                    .uid()
                    .map_err(|e| ReadError::Bad(format!("bad uid field: {e}")))?,
                gid: header
                    .gid()
                    .map_err(|e| ReadError::Bad(format!("bad gid field: {e}")))?,
                mtime: header
                    .mtime()
                    .map_err(|e| ReadError::Bad(format!("bad mtime field: {e}")))?,
                xattrs: Vec::new(),
                refused_keys: Vec::new(),
                header,
            };
            if let Some(p) = &pax {
                for (k, v) in pax_records(p)? {
                    match k {
                        b"path" => e.path = v.to_vec(),
                        b"linkpath" => e.link = Some(v.to_vec()),
                        b"size" => e.size = pax_number(k, v)?,
                        b"uid" => e.uid = pax_number(k, v)?,
                        b"gid" => e.gid = pax_number(k, v)?,
                        b"mtime" => e.mtime = pax_number(k, v)?,
                        _ if k.starts_with(b"SCHILY.xattr.") => e
                            .xattrs
                            .push((k[b"SCHILY.xattr.".len()..].to_vec(), v.to_vec())),
                        _ if k.starts_with(b"GNU.sparse.")
                            || k.starts_with(b"SCHILY.acl.")
                            || k.starts_with(b"LIBARCHIVE.xattr.") =>
                        {
                            e.refused_keys.push(String::from_utf8_lossy(k).into_owned())
                        }
                        _ => {} // atime, ctime, uname, gname, comment, charset: not part of the image
                    }
                }
            }
            self.next = e
                .data_pos
                .checked_add(e.size.div_ceil(512) * 512)
                .ok_or_else(|| ReadError::Bad("entry size overflows".into()))?;
            return Ok(Some(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_contain_newlines() {
        let rec = b"30 SCHILY.xattr.user.a=x\ny\n\0z\n13 mtime=5.5\n";
        let r = pax_records(rec).ok().unwrap();
        assert_eq!(r[0], (&b"SCHILY.xattr.user.a"[..], &b"x\ny\n\0z"[..]));
        assert_eq!(pax_number(r[1].0, r[1].1).ok(), Some(5));
        assert!(pax_records(b"99 path=x\n").is_err());
        assert!(pax_records(b"x path=x\n").is_err());
    }
}
