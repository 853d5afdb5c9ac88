//! Partitions by GPT name on either a running node's block devices (sysfs, see [`crate::block`])
//! or a disk image file (its GPT read directly), and windowed I/O on them, so what the upgrade tool
//! does to a node's disk can be run and tested on an image file without a VM or loop devices.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::block;

/// Where the partitions live.
#[derive(Clone, Debug)]
pub enum Disk {
    /// The kernel's block devices: `/sys/class/block` and `/dev`.
    Devices { sys_block: PathBuf, dev: PathBuf },
    /// A whole-disk image file (or a whole-disk block device) whose GPT is read directly.
    Image(PathBuf),
}

/// A partition: the file holding it and its byte range there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRef {
    pub name: String,
    pub path: PathBuf,
    pub offset: u64,
    pub size: u64,
}

impl PartRef {
    /// How errors name it: `root_b (/dev/vda5)` or `root_b (disk.img @ 1048576)`.
    pub fn label(&self) -> String {
        if self.offset == 0 {
            format!("{} ({})", self.name, self.path.display())
        } else {
            format!("{} ({} @ {})", self.name, self.path.display(), self.offset)
        }
    }

    /// Opens the partition read-only.
    pub fn open_read(&self) -> io::Result<Window> {
        Window::new(File::open(&self.path)?, self.offset, self.size)
    }

    /// Opens the partition for writing (never truncating or creating: it must exist).
    pub fn open_write(&self) -> io::Result<Window> {
        let f = OpenOptions::new().read(true).write(true).open(&self.path)?;
        Window::new(f, self.offset, self.size)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    Block(#[from] block::BlockError),
    #[error("cannot read the GPT of {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: not a GPT disk I can use: {problem}")]
    Gpt { path: PathBuf, problem: String },
}

impl Disk {
    /// Every named partition, in disk order.
    pub fn partitions(&self) -> Result<Vec<PartRef>, DiskError> {
        match self {
            Disk::Devices { sys_block, dev } => Ok(block::partitions(sys_block, dev)?
                .into_iter()
                .map(|p| PartRef {
                    name: p.name,
                    path: p.node,
                    offset: 0,
                    size: p.size,
                })
                .collect()),
            Disk::Image(path) => read_gpt(path),
        }
    }
}

pub use block::by_name;

impl block::Named for PartRef {
    fn name(&self) -> &str {
        &self.name
    }
    fn label(&self) -> String {
        PartRef::label(self)
    }
}

const SECTOR: u64 = 512;

/// Reads the primary GPT (512-byte sectors) of an image, checking both CRCs and every bound.
fn read_gpt(path: &Path) -> Result<Vec<PartRef>, DiskError> {
    let rd = |source| DiskError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bad = |problem: String| DiskError::Gpt {
        path: path.to_path_buf(),
        problem,
    };
    let mut f = File::open(path).map_err(rd)?;
    let len = f.seek(SeekFrom::End(0)).map_err(rd)?;
    let mut hdr = [0u8; SECTOR as usize];
    f.seek(SeekFrom::Start(SECTOR)).map_err(rd)?;
    f.read_exact(&mut hdr)
        .map_err(|_| bad("shorter than a GPT header".into()))?;
    if &hdr[..8] != b"EFI PART" {
        return Err(bad("no GPT header at LBA 1".into()));
    }
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let hsize = le32(&hdr, 12) as usize;
    if !(92..=SECTOR as usize).contains(&hsize) {
        return Err(bad(format!("header size {hsize}")));
    }
    let mut h = hdr[..hsize].to_vec();
    h[16..20].fill(0);
    if crc32fast::hash(&h) != le32(&hdr, 16) {
        return Err(bad("the header CRC does not match".into()));
    }
    let entries_lba = le64(&hdr, 72);
    let count = le32(&hdr, 80) as u64;
    let esize = le32(&hdr, 84) as u64;
    if count > 1024 || !(128..=1024).contains(&esize) || !esize.is_multiple_of(8) {
        return Err(bad(format!("{count} entries of {esize} bytes")));
    }
    let table_len = count * esize;
    let start = entries_lba
        .checked_mul(SECTOR)
        .filter(|s| s.saturating_add(table_len) <= len)
        .ok_or_else(|| bad("the partition table lies past the end".into()))?;
    let mut table = vec![0u8; table_len as usize];
    f.seek(SeekFrom::Start(start)).map_err(rd)?;
    f.read_exact(&mut table).map_err(rd)?;
    if crc32fast::hash(&table) != le32(&hdr, 88) {
        return Err(bad("the partition table CRC does not match".into()));
    }
    let mut out = Vec::new();
    for e in table.chunks_exact(esize as usize) {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name =
            String::from_utf16(&units).map_err(|_| bad("a partition name is not UTF-16".into()))?;
        let range = (first <= last)
            .then(|| (first.checked_mul(SECTOR), (last + 1).checked_mul(SECTOR)))
            .and_then(|(a, b)| Some((a?, b?)))
            .filter(|&(_, end)| end <= len)
            .ok_or_else(|| bad(format!("partition {name:?} lies outside the image")))?;
        out.push(PartRef {
            name,
            path: path.to_path_buf(),
            offset: range.0,
            size: range.1 - range.0,
        });
    }
    out.sort_by_key(|p| p.offset);
    for w in out.windows(2) {
        if w[0].offset + w[0].size > w[1].offset {
            return Err(bad(format!(
                "partitions {:?} and {:?} overlap",
                w[0].name, w[1].name
            )));
        }
    }
    Ok(out)
}

/// A byte range of a file as a file of its own: reads end, and writes fail, at its end.
pub struct Window {
    file: File,
    offset: u64,
    size: u64,
    pos: u64,
}

impl Window {
    pub fn new(mut file: File, offset: u64, size: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Window {
            file,
            offset,
            size,
            pos: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the written bytes to the device and drops them from the page cache, so a read
    /// that follows comes from the medium, not from memory.
    pub fn sync_and_drop_cache(&mut self) -> io::Result<()> {
        self.file.sync_all()?;
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; fadvise only advises the kernel.
        let rc = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                self.offset as libc::off_t,
                self.size as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Window {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.size.saturating_sub(self.pos);
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("the partition ends at {} bytes", self.size),
            ));
        }
        let n = (buf.len() as u64).min(left) as usize;
        let put = self.file.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.file.seek(SeekFrom::Start(self.offset + target))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reads_and_writes_stay_inside() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), [7u8; 100]).unwrap();
        let p = PartRef {
            name: "x".into(),
            path: t.path().into(),
            offset: 10,
            size: 20,
        };
        let mut w = p.open_write().unwrap();
        w.write_all(&[1u8; 20]).unwrap();
        let e = w.write_all(&[1u8; 1]).unwrap_err();
        assert!(
            e.to_string().contains("the partition ends at 20 bytes"),
            "{e}"
        );
        let mut r = p.open_read().unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, [1u8; 20]);
        let file = std::fs::read(t.path()).unwrap();
        assert_eq!((file[9], file[10], file[29], file[30]), (7, 1, 1, 7));
    }

    #[test]
    fn not_a_gpt_is_refused() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), [0u8; 4096]).unwrap();
        let e = Disk::Image(t.path().into()).partitions().unwrap_err();
        assert!(e.to_string().contains("no GPT header at LBA 1"), "{e}");
    }
}
