//! Opening an input that must be a regular file, without trusting what its name looks like.
//!
//! `File::open` follows a symbolic link wherever it points and blocks forever on a FIFO nobody
//! writes to. These functions open with `O_NONBLOCK` (so a FIFO or a terminal cannot block),
//! check the type of what was actually opened with `fstat` on the descriptor (no race between a
//! check and the open), refuse anything but a regular file, and then clear `O_NONBLOCK` again.
//! [`open_regular_nofollow`] also refuses a symbolic link as the last path component
//! (`O_NOFOLLOW`); directories higher up the path are followed as usual.
//!
//! A refusal is an `io::Error` of kind `InvalidInput` whose message says what the path is
//! ("is a symbolic link, which is not followed", "is a FIFO (named pipe), not a regular file");
//! [`refused_kind`] gives that kind back to callers that report it in their own words.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// What a path turned out to be when a regular file was required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRegular {
    Symlink,
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NotRegular {
    /// "a symbolic link", "a directory", "a FIFO (named pipe)", …
    pub fn noun(self) -> &'static str {
        match self {
            NotRegular::Symlink => "a symbolic link",
            NotRegular::Directory => "a directory",
            NotRegular::Fifo => "a FIFO (named pipe)",
            NotRegular::Socket => "a socket",
            NotRegular::CharDevice => "a character device",
            NotRegular::BlockDevice => "a block device",
        }
    }

    /// The kind of a file type that is not a regular file (`None` for a regular file).
    pub fn of(t: std::fs::FileType) -> Option<Self> {
        if t.is_file() {
            None
        } else if t.is_symlink() {
            Some(NotRegular::Symlink)
        } else if t.is_dir() {
            Some(NotRegular::Directory)
        } else if t.is_fifo() {
            Some(NotRegular::Fifo)
        } else if t.is_socket() {
            Some(NotRegular::Socket)
        } else if t.is_char_device() {
            Some(NotRegular::CharDevice)
        } else {
            Some(NotRegular::BlockDevice)
        }
    }
}

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRegular::Symlink => f.write_str("is a symbolic link, which is not followed"),
            k => write!(f, "is {}, not a regular file", k.noun()),
        }
    }
}

impl std::error::Error for NotRegular {}

/// The kind of file an open was refused for, if that was the reason for `e`.
pub fn refused_kind(e: &io::Error) -> Option<NotRegular> {
    e.get_ref()?.downcast_ref::<NotRegular>().copied()
}

fn refuse(kind: NotRegular) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, kind)
}

/// Opens `path` for reading; refuses a symbolic link (as the last component) and anything that is
/// not a regular file, without blocking on FIFOs.
pub fn open_regular_nofollow(path: &Path) -> io::Result<File> {
    open(path, libc::O_NOFOLLOW).map_err(|e| {
        // O_NOFOLLOW reports a symbolic link as ELOOP; say what it is.
        let is_link = e.raw_os_error() == Some(libc::ELOOP)
            && path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            refuse(NotRegular::Symlink)
        } else {
            e
        }
    })
}

/// Opens `path` for reading, following symbolic links, and refuses anything that is not a regular
/// file, without blocking on FIFOs.
pub fn open_regular(path: &Path) -> io::Result<File> {
    open(path, 0)
}

fn open(path: &Path, extra_flags: libc::c_int) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | extra_flags)
        .open(path)?;
    if let Some(kind) = NotRegular::of(file.metadata()?.file_type()) {
        return Err(refuse(kind));
    }
    // Reads of a regular file never block; clear the flag so the descriptor behaves as usual.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn regular_files_open_and_read_normally() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"data").unwrap();
        for open in [open_regular, open_regular_nofollow] {
            let mut s = String::new();
            open(&p).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "data");
        }
        let f = open_regular(&p).unwrap();
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "O_NONBLOCK is cleared");
    }

    #[test]
    fn symlinks_directories_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();

        let e = open_regular_nofollow(&link).unwrap_err();
        assert_eq!(refused_kind(&e), Some(NotRegular::Symlink));
        assert_eq!(e.to_string(), "is a symbolic link, which is not followed");
        // A dangling link is still named a link.
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let e = open_regular_nofollow(&dangling).unwrap_err();
        assert_eq!(refused_kind(&e), Some(NotRegular::Symlink));
        // open_regular follows the link to a regular file.
        assert!(open_regular(&link).is_ok());

        for open in [open_regular, open_regular_nofollow] {
            // No writer: a blocking open would hang the test here.
            let e = open(&fifo).unwrap_err();
            assert_eq!(refused_kind(&e), Some(NotRegular::Fifo), "{e}");
            assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
            let e = open(&sub).unwrap_err();
            assert_eq!(refused_kind(&e), Some(NotRegular::Directory), "{e}");
            let e = open(Path::new("/dev/null")).unwrap_err();
            assert_eq!(refused_kind(&e), Some(NotRegular::CharDevice), "{e}");
            let e = open(&dir.path().join("missing")).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            assert_eq!(refused_kind(&e), None);
        }
        // A link to a FIFO is refused by both, for what it is.
        let fifo_link = dir.path().join("fifo-link");
        symlink(&fifo, &fifo_link).unwrap();
        assert_eq!(
            refused_kind(&open_regular(&fifo_link).unwrap_err()),
            Some(NotRegular::Fifo)
        );
        assert_eq!(
            refused_kind(&open_regular_nofollow(&fifo_link).unwrap_err()),
            Some(NotRegular::Symlink)
        );
    }
}
