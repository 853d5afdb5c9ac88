//! The kernel's device-mapper control interface (`/dev/mapper/control`, linux/dm-ioctl.h), just
//! what a read-only verity root needs: create a device, load its table, resume it, read its table
//! and status back, remove it.
//!
//! Written by hand on `libc::ioctl`: the `devicemapper` crate generates its bindings with bindgen
//! at build time, which needs libclang, and the pinned toolchain that builds the node tools carries
//! no clang. The interface is two fixed C structs and six commands.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Interface version we speak (4.0.0: any 4.x kernel accepts it).
const VERSION: [u32; 3] = [4, 0, 0];
const NAME_LEN: usize = 128;
const UUID_LEN: usize = 129;
/// `sizeof(struct dm_ioctl)`.
const HEADER_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const TARGET_SPEC_SIZE: usize = 40;
const TARGET_TYPE_LEN: usize = 16;
/// Room for what the kernel writes back (tables and status lines are a few hundred bytes).
const BUFFER_SIZE: usize = 16 * 1024;
// name (at 48) and uuid follow each other inside the header.
const _: () = assert!(48 + NAME_LEN + UUID_LEN <= HEADER_SIZE);

const READONLY_FLAG: u32 = 1 << 0;
const STATUS_TABLE_FLAG: u32 = 1 << 4;
const BUFFER_FULL_FLAG: u32 = 1 << 8;

#[derive(Clone, Copy)]
enum Command {
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    TableLoad = 9,
    TableStatus = 12,
}

/// `_IOWR(0xfd, cmd, struct dm_ioctl)`.
fn request(cmd: Command) -> libc::c_ulong {
    const IOC_READ_WRITE: libc::c_ulong = 3;
    (IOC_READ_WRITE << 30)
        | ((HEADER_SIZE as libc::c_ulong) << 16)
        | (0xfd << 8)
        | cmd as libc::c_ulong
}

#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("cannot open the device-mapper control device {path}: {source} (is the dm-mod module loaded?)")]
    Control { path: String, source: io::Error },
    #[error("device-mapper name {0:?} is empty, too long or holds a '/' or NUL")]
    BadName(String),
    #[error("device-mapper {what} of {name:?} failed: {source}")]
    Ioctl {
        what: &'static str,
        name: String,
        source: io::Error,
    },
    #[error("device-mapper table for {name:?} is too long ({len} bytes)")]
    TableTooLong { name: String, len: usize },
    #[error("the kernel's answer to {what} of {name:?} is malformed: {problem}")]
    Answer {
        what: &'static str,
        name: String,
        problem: String,
    },
}

/// One line of a device's table: sectors `start..start+length` mapped by `target` with `params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub target: String,
    pub params: String,
}

/// The control device, open.
pub struct Control {
    file: File,
}

/// A created device: its name and `dev_t` numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl Control {
    /// Opens `/dev/mapper/control` (or `path`).
    pub fn open(path: &Path) -> Result<Control, DmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DmError::Control {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Control { file })
    }

    /// Creates device `name` with `table` loaded read-only and resumed (what `dmsetup create
    /// --readonly` does). On failure after the create, the half-made device is removed again.
    pub fn create_readonly(&self, name: &str, table: &[Target]) -> Result<Device, DmError> {
        let mut buf = Buffer::new(name, 0)?;
        self.call(Command::DevCreate, "create", &mut buf)?;
        let device = buf.device(name)?;
        let loaded = (|| {
            let mut buf = Buffer::new(name, READONLY_FLAG)?;
            buf.put_targets(name, table)?;
            self.call(Command::TableLoad, "table load", &mut buf)?;
            // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table goes live.
            let mut buf = Buffer::new(name, 0)?;
            self.call(Command::DevSuspend, "resume", &mut buf)
        })();
        if let Err(e) = loaded {
            let _ = self.remove(name);
            return Err(e);
        }
        Ok(device)
    }

    /// Removes device `name`.
    pub fn remove(&self, name: &str) -> Result<(), DmError> {
        let mut buf = Buffer::new(name, 0)?;
        self.call(Command::DevRemove, "remove", &mut buf)
    }

    /// The live table of `name` (`dmsetup table`).
    pub fn table(&self, name: &str) -> Result<Vec<Target>, DmError> {
        self.targets(name, STATUS_TABLE_FLAG, "table")
    }

    /// The status of `name` (`dmsetup status`; for verity: `V` verified so far, `C` corruption seen).
    pub fn status(&self, name: &str) -> Result<Vec<Target>, DmError> {
        self.targets(name, 0, "status")
    }

    fn targets(&self, name: &str, flags: u32, what: &'static str) -> Result<Vec<Target>, DmError> {
        let mut buf = Buffer::new(name, flags)?;
        self.call(Command::TableStatus, what, &mut buf)?;
        buf.get_targets(name, what)
    }

    fn call(&self, cmd: Command, what: &'static str, buf: &mut Buffer) -> Result<(), DmError> {
        // SAFETY: `buf.bytes` is a live, writable buffer of `data_size` bytes starting with a
        // dm_ioctl header whose data_size says so; the kernel writes only within it.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                request(cmd) as _,
                buf.bytes.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(DmError::Ioctl {
                what,
                name: buf.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        if buf.u32_at(28) & BUFFER_FULL_FLAG != 0 {
            return Err(DmError::Answer {
                what,
                name: buf.name.clone(),
                problem: format!("it does not fit in {BUFFER_SIZE} bytes"),
            });
        }
        Ok(())
    }
}

/// A `struct dm_ioctl` followed by its data, in one 8-byte aligned buffer.
struct Buffer {
    name: String,
    bytes: Vec<u64>,
}

impl Buffer {
    fn new(name: &str, flags: u32) -> Result<Buffer, DmError> {
        if name.is_empty() || name.len() >= NAME_LEN || name.contains(['/', '\0']) {
            return Err(DmError::BadName(name.to_string()));
        }
        let mut buf = Buffer {
            name: name.to_string(),
            bytes: vec![0u64; BUFFER_SIZE / 8],
        };
        for (i, v) in VERSION.iter().enumerate() {
            buf.set_u32(i * 4, *v);
        }
        buf.set_u32(12, BUFFER_SIZE as u32); // data_size: the whole buffer
        buf.set_u32(16, HEADER_SIZE as u32); // data_start
        buf.set_u32(28, flags);
        buf.raw_mut()[48..48 + name.len()].copy_from_slice(name.as_bytes());
        Ok(buf)
    }

    fn raw(&self) -> &[u8] {
        // SAFETY: a Vec<u64> is a valid, initialized byte buffer of 8× its length.
        unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.bytes.len() * 8) }
    }

    fn raw_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `raw`, and the borrow is unique.
        unsafe {
            std::slice::from_raw_parts_mut(self.bytes.as_mut_ptr().cast(), self.bytes.len() * 8)
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.raw()[at..at + 4].try_into().expect("4 bytes"))
    }

    fn set_u32(&mut self, at: usize, v: u32) {
        self.raw_mut()[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn device(&self, name: &str) -> Result<Device, DmError> {
        let dev = u64::from_ne_bytes(self.raw()[40..48].try_into().expect("8 bytes"));
        // The kernel encodes dev_t as glibc's makedev does (huge_encode_dev).
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        if major == 0 {
            return Err(DmError::Answer {
                what: "create",
                name: name.to_string(),
                problem: "no device number".into(),
            });
        }
        Ok(Device {
            name: name.to_string(),
            major,
            minor,
        })
    }

    /// Writes the target specs after the header (TABLE_LOAD's input).
    fn put_targets(&mut self, name: &str, table: &[Target]) -> Result<(), DmError> {
        let mut at = HEADER_SIZE;
        for (i, t) in table.iter().enumerate() {
            if t.target.is_empty() || t.target.len() >= TARGET_TYPE_LEN || t.params.contains('\0') {
                return Err(DmError::Answer {
                    what: "table load",
                    name: name.to_string(),
                    problem: format!("bad target {:?}", t.target),
                });
            }
            // Each spec is followed by its NUL-terminated parameters, padded to 8 bytes; `next`
            // is the offset of the following spec from the start of this one.
            let spec_len = (TARGET_SPEC_SIZE + t.params.len() + 1).div_ceil(8) * 8;
            if at + spec_len > BUFFER_SIZE {
                return Err(DmError::TableTooLong {
                    name: name.to_string(),
                    len: at + spec_len,
                });
            }
            let raw = self.raw_mut();
            raw[at..at + 8].copy_from_slice(&t.start.to_ne_bytes());
            raw[at + 8..at + 16].copy_from_slice(&t.length.to_ne_bytes());
            let next = if i + 1 < table.len() {
                spec_len as u32
            } else {
                0
            };
            raw[at + 20..at + 24].copy_from_slice(&next.to_ne_bytes());
            raw[at + 24..at + 24 + t.target.len()].copy_from_slice(t.target.as_bytes());
            let p = at + TARGET_SPEC_SIZE;
            raw[p..p + t.params.len()].copy_from_slice(t.params.as_bytes());
            at += spec_len;
        }
        self.set_u32(20, table.len() as u32); // target_count
        Ok(())
    }

    /// Reads the target specs the kernel wrote after `data_start` (TABLE_STATUS's output).
    fn get_targets(&self, name: &str, what: &'static str) -> Result<Vec<Target>, DmError> {
        let bad = |problem: String| DmError::Answer {
            what,
            name: name.to_string(),
            problem,
        };
        let raw = self.raw();
        let count = self.u32_at(20) as usize;
        let mut at = self.u32_at(16) as usize;
        let mut out = Vec::new();
        for i in 0..count {
            if at + TARGET_SPEC_SIZE > raw.len() {
                return Err(bad(format!("target {i} lies outside the buffer")));
            }
            let start = u64::from_ne_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
            let length = u64::from_ne_bytes(raw[at + 8..at + 16].try_into().expect("8 bytes"));
            let next =
                u32::from_ne_bytes(raw[at + 20..at + 24].try_into().expect("4 bytes")) as usize;
            let c_str = |bytes: &[u8]| {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                String::from_utf8_lossy(&bytes[..end]).into_owned()
            };
            let target = c_str(&raw[at + 24..at + 24 + TARGET_TYPE_LEN]);
            let params = c_str(&raw[at + TARGET_SPEC_SIZE..]);
            out.push(Target {
                start,
                length,
                target,
                params,
            });
            // In answers, `next` is the offset from the start of the data area's previous spec.
            if i + 1 < count {
                if next == 0 {
                    return Err(bad(format!("target {i} has no successor")));
                }
                at = self.u32_at(16) as usize + next;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_header() {
        // From linux/dm-ioctl.h on x86-64: DM_DEV_CREATE = 0xc138fd03, DM_TABLE_LOAD = 0xc138fd09.
        assert_eq!(request(Command::DevCreate), 0xc138_fd03);
        assert_eq!(request(Command::TableLoad), 0xc138_fd09);
        assert_eq!(request(Command::TableStatus), 0xc138_fd0c);
    }

    #[test]
    fn a_table_round_trips_through_the_buffer_layout() {
        let table = vec![Target {
            start: 0,
            length: 2048,
            target: "verity".into(),
            params: "1 /dev/vda3 /dev/vda4 4096 4096 256 1 sha256 ab cd".into(),
        }];
        let mut buf = Buffer::new("root", READONLY_FLAG).unwrap();
        buf.put_targets("root", &table).unwrap();
        assert_eq!(buf.get_targets("root", "table").unwrap(), table);
    }

    #[test]
    fn names_the_kernel_refuses_are_refused_here() {
        for bad in ["", "a/b", "nul\0", &"x".repeat(128)] {
            assert!(
                matches!(Buffer::new(bad, 0), Err(DmError::BadName(_))),
                "{bad:?}"
            );
        }
    }
}
