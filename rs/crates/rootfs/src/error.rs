use std::io;
use std::path::PathBuf;

/// Everything that can make a rootfs build fail. Each variant names the input (layer, spec file,
/// output path) and, for layer problems, the tar entry.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A tar entry of a layer is refused.
    #[error("{layer}: entry {entry:?}: {problem}")]
    Entry {
        layer: String,
        entry: String,
        problem: EntryProblem,
    },

    /// The layer stream itself cannot be read: corrupt or truncated tar, failed digest check, I/O.
    #[error("{layer}: {context}: {source}")]
    LayerRead {
        layer: String,
        context: String,
        #[source]
        source: io::Error,
    },

    /// The image description (`image.toml`) is invalid or cannot be applied.
    #[error("{}: {problem}", path.display())]
    Spec { path: PathBuf, problem: String },

    /// Reading an input file or writing an output failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a tar entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error(
        "the path climbs above the image root with '..'; a layer may only write inside the image"
    )]
    EscapesRoot,
    #[error("the path is not valid UTF-8; icos-rootfs accepts only UTF-8 names (the manifest is JSON and the filesystem writers take strings): rename it in the layer")]
    NonUtf8,
    #[error("the path contains a NUL byte")]
    ContainsNul,
    #[error("its parent /{parent} is a {kind}, not a directory: entries are never written through symlinks or files; write the entry under the real directory instead")]
    ParentNotDirectory { parent: String, kind: &'static str },
    #[error("the root directory cannot be replaced by a {kind}")]
    RootNotDirectory { kind: &'static str },
    #[error("hardlink target {target:?} climbs above the image root with '..'")]
    HardlinkEscapes { target: String },
    #[error("hardlink target /{target} does not exist (in this layer before the link, or in a lower layer)")]
    HardlinkTargetMissing { target: String },
    #[error("hardlink target /{target} is a directory; directories cannot be hardlinked")]
    HardlinkToDirectory { target: String },
    #[error("hardlink target is not valid UTF-8")]
    HardlinkNonUtf8,
    #[error("symlink target is {0}")]
    BadSymlinkTarget(&'static str),
    #[error("whiteout {name:?} would delete {what}; a whiteout can only name an entry inside its directory")]
    InvalidWhiteout { name: String, what: &'static str },
    #[error("the same layer has this path both as a {earlier} and as a {later}; a layer must not contain conflicting entries for one path")]
    ConflictingTypes {
        earlier: &'static str,
        later: &'static str,
    },
    #[error("unsupported tar entry type {typeflag:?} ({what}): a rootfs holds only regular files, hardlinks, symlinks, directories, character/block devices and fifos")]
    UnsupportedType { typeflag: char, what: &'static str },
    #[error("sparse entries are not supported: repack the layer without --sparse")]
    Sparse,
    #[error("the layer ends inside this entry's data (the header says {expected} bytes, only {got} are there): the layer is truncated or corrupt")]
    Truncated { expected: u64, got: u64 },
    #[error("invalid {field} in the tar header: {detail}")]
    BadHeader { field: &'static str, detail: String },
    #[error("invalid extended attribute record {key:?}: {detail}")]
    BadXattr { key: String, detail: String },
    #[error("a PAX global header sets {key:?}, which would change every later entry; only 'comment' records are accepted there")]
    GlobalHeader { key: String },
}
