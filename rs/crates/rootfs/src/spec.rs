//! The image description, `image.toml`: the image's own changes on top of the base.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use icos_common::Digest;
use serde::Deserialize;

use crate::error::RootfsError;
use crate::layer::check_xattr_name;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    layer: Vec<RawLayer>,
    #[serde(default)]
    dir: Vec<RawDir>,
    #[serde(default)]
    file: Vec<RawFile>,
    #[serde(default)]
    symlink: Vec<RawSymlink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    path: String,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    xattrs: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    content: Option<String>,
    source: Option<String>,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    xattrs: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymlink {
    path: String,
    target: String,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// A validated `image.toml`. Paths inside are root-relative (no leading `/`).
#[derive(Debug)]
pub struct ImageSpec {
    /// The spec file as given (recorded in the manifest).
    pub path: PathBuf,
    pub sha256: Digest,
    /// Where relative `source` paths are looked up, in order (the first that has the file wins).
    pub source_roots: Vec<PathBuf>,
    pub(crate) remove: Vec<String>,
    pub(crate) remove_set: GlobSet,
    pub(crate) layers: Vec<SpecSource>,
    pub(crate) dirs: Vec<SpecDir>,
    pub(crate) files: Vec<SpecFile>,
    pub(crate) symlinks: Vec<SpecSymlink>,
}

#[derive(Debug)]
pub(crate) struct SpecSource {
    /// As written in the spec.
    pub name: String,
    pub resolved: PathBuf,
}

#[derive(Debug)]
pub(crate) struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct SpecDir {
    pub label: String,
    pub path: String,
    pub owner: Owner,
}

#[derive(Debug)]
pub(crate) enum Content {
    Inline(String),
    Source(SpecSource),
}

#[derive(Debug)]
pub(crate) struct SpecFile {
    pub label: String,
    pub path: String,
    pub content: Content,
    pub owner: Owner,
}

#[derive(Debug)]
pub(crate) struct SpecSymlink {
    pub label: String,
    pub path: String,
    pub target: String,
    pub uid: u32,
    pub gid: u32,
}

/// Specs are small text files; anything bigger is a mistake, not a spec.
const MAX_SPEC_BYTES: u64 = 16 << 20;

impl ImageSpec {
    /// Reads and validates a spec. Relative `source` paths are looked up in `source_roots`, in
    /// order, if any are given, else in the spec's directory. Several roots let a build system
    /// keep checked-in sources and generated ones (layers, an initramfs) in different trees.
    pub fn load(path: &Path, source_roots: &[PathBuf]) -> Result<Self, RootfsError> {
        let spec_error = |problem: String| RootfsError::Spec {
            path: path.to_path_buf(),
            problem,
        };
        let metadata = std::fs::metadata(path).map_err(|source| RootfsError::Io {
            context: "cannot read the image spec",
            path: path.to_path_buf(),
            source,
        })?;
        if metadata.len() > MAX_SPEC_BYTES {
            return Err(spec_error(format!(
                "is {} bytes, more than a spec can be",
                metadata.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|source| RootfsError::Io {
            context: "cannot read the image spec",
            path: path.to_path_buf(),
            source,
        })?;
        let source_roots = if source_roots.is_empty() {
            vec![match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }]
        } else {
            source_roots.to_vec()
        };
        Self::parse(path, &bytes, source_roots)
    }

    /// Validates spec text; `path` only names the spec in errors and the manifest.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        source_roots: Vec<PathBuf>,
    ) -> Result<Self, RootfsError> {
        let spec_error = |problem: String| RootfsError::Spec {
            path: path.to_path_buf(),
            problem,
        };
        let text =
            std::str::from_utf8(bytes).map_err(|_| spec_error("is not UTF-8 text".into()))?;
        let raw: RawSpec =
            toml::from_str(text).map_err(|e| spec_error(e.to_string().trim_end().to_string()))?;

        let mut remove_set = GlobSetBuilder::new();
        for (i, pattern) in raw.remove.iter().enumerate() {
            let label = format!("remove[{i}] {pattern:?}");
            if !pattern.starts_with('/') {
                return Err(spec_error(format!(
                    "{label}: patterns match absolute paths in the image; start it with '/'"
                )));
            }
            // Image paths are canonical, so such a pattern could only ever match nothing.
            if pattern.split('/').skip(1).any(|c| c == "." || c == "..") {
                return Err(spec_error(format!(
                    "{label}: has a '.' or '..' component; paths in the image are canonical"
                )));
            }
            let glob: Glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| spec_error(format!("{label}: {e}")))?;
            remove_set.add(glob);
        }
        let remove_set = remove_set
            .build()
            .map_err(|e| spec_error(format!("remove: {e}")))?;

        let resolve = |label: &str, source: &str| -> Result<SpecSource, RootfsError> {
            if source.is_empty() || Path::new(source).is_absolute() {
                return Err(spec_error(format!(
                    "{label}: source {source:?} must be a relative path (resolved against --source-root or the spec's directory)"
                )));
            }
            // A source names a file under a source root; `..` would name any file on the host.
            if source.split('/').any(|c| c == "..") || source.contains('\0') {
                return Err(spec_error(format!(
                    "{label}: source {source:?} has a '..' component (or a NUL byte); a source must stay inside its source root"
                )));
            }
            // The first root holding the file wins; if none does, reading it later reports the
            // path under the first root.
            let candidates = source_roots.iter().map(|root| root.join(source));
            let resolved = candidates
                .clone()
                .find(|p| p.exists())
                .or_else(|| candidates.clone().next())
                .unwrap_or_else(|| PathBuf::from(source));
            Ok(SpecSource {
                name: source.to_string(),
                resolved,
            })
        };

        let layers = raw
            .layer
            .iter()
            .enumerate()
            .map(|(i, l)| resolve(&format!("[[layer]] #{}", i + 1), &l.source))
            .collect::<Result<Vec<_>, _>>()?;

        // Each path once: a declarative description says one thing about a path.
        let mut declared: BTreeMap<String, String> = BTreeMap::new();
        let mut declare = |label: &str,
                           raw_path: &str,
                           root_ok: bool|
         -> Result<String, RootfsError> {
            let path =
                image_path(raw_path, root_ok).map_err(|p| spec_error(format!("{label}: {p}")))?;
            if let Some(previous) = declared.insert(path.clone(), label.to_string()) {
                return Err(spec_error(format!(
                    "{label}: path {raw_path:?} is already declared by {previous}; declare each path once"
                )));
            }
            Ok(path)
        };

        let mut dirs = Vec::new();
        for (i, d) in raw.dir.iter().enumerate() {
            let label = format!("[[dir]] #{} ({})", i + 1, d.path);
            let path = declare(&label, &d.path, true)?;
            let owner = owner(d.mode.as_deref(), 0o755, d.uid, d.gid, d.xattrs.as_ref())
                .map_err(|p| spec_error(format!("{label}: {p}")))?;
            dirs.push(SpecDir { label, path, owner });
        }
        let mut files = Vec::new();
        for (i, f) in raw.file.iter().enumerate() {
            let label = format!("[[file]] #{} ({})", i + 1, f.path);
            let path = declare(&label, &f.path, false)?;
            let owner = owner(f.mode.as_deref(), 0o644, f.uid, f.gid, f.xattrs.as_ref())
                .map_err(|p| spec_error(format!("{label}: {p}")))?;
            let content = match (&f.content, &f.source) {
                (Some(text), None) => Content::Inline(text.clone()),
                (None, Some(source)) => Content::Source(resolve(&label, source)?),
                _ => {
                    return Err(spec_error(format!(
                        "{label}: set exactly one of `content` (inline text) or `source` (a file)"
                    )))
                }
            };
            files.push(SpecFile {
                label,
                path,
                content,
                owner,
            });
        }
        let mut symlinks = Vec::new();
        for (i, s) in raw.symlink.iter().enumerate() {
            let label = format!("[[symlink]] #{} ({})", i + 1, s.path);
            let path = declare(&label, &s.path, false)?;
            if s.target.is_empty() || s.target.contains('\0') {
                return Err(spec_error(format!(
                    "{label}: target must be non-empty and without NUL"
                )));
            }
            symlinks.push(SpecSymlink {
                label,
                path,
                target: s.target.clone(),
                uid: s.uid.unwrap_or(0),
                gid: s.gid.unwrap_or(0),
            });
        }

        Ok(ImageSpec {
            path: path.to_path_buf(),
            sha256: Digest::of(bytes),
            source_roots,
            remove: raw.remove,
            remove_set,
            layers,
            dirs,
            files,
            symlinks,
        })
    }
}

/// An absolute image path written canonically (`/a/b`), returned root-relative (`a/b`).
fn image_path(raw: &str, root_ok: bool) -> Result<String, String> {
    if raw == "/" {
        return if root_ok {
            Ok(String::new())
        } else {
            Err("the root \"/\" can only be a [[dir]]".into())
        };
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(format!("path {raw:?} must be absolute (start with '/')"));
    };
    if raw.contains('\0') {
        return Err(format!("path {raw:?} contains a NUL byte"));
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "path {raw:?} is not canonical: no empty, '.' or '..' components and no trailing '/'"
        ));
    }
    if rest.split('/').any(|c| c.starts_with(".wh.")) {
        return Err(format!("path {raw:?} has a component starting with \".wh.\", which layers reserve for whiteouts"));
    }
    Ok(rest.to_string())
}

fn owner(
    mode: Option<&str>,
    default_mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    xattrs: Option<&BTreeMap<String, String>>,
) -> Result<Owner, String> {
    let mode = match mode {
        None => default_mode,
        Some(text) => parse_mode(text)?,
    };
    let mut decoded = BTreeMap::new();
    for (name, value) in xattrs.into_iter().flatten() {
        check_xattr_name(name).map_err(|e| format!("xattr {name:?}: {e}"))?;
        let bytes = hex::decode(value)
            .map_err(|e| format!("xattr {name:?}: value must be hex digits ({e})"))?;
        decoded.insert(name.clone(), bytes);
    }
    Ok(Owner {
        mode,
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        xattrs: decoded,
    })
}

/// Modes are octal strings ("0644", "4755") so that a TOML integer 644 is never read as decimal.
fn parse_mode(text: &str) -> Result<u32, String> {
    let valid = (3..=4).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !valid {
        return Err(format!(
            "mode {text:?} must be 3 or 4 octal digits, like \"0644\" or \"4755\""
        ));
    }
    Ok(u32::from_str_radix(text, 8).expect("checked octal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ImageSpec, String> {
        ImageSpec::parse(
            Path::new("ic-os/image.toml"),
            text.as_bytes(),
            vec![PathBuf::from("/src")],
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn sources_come_from_the_first_root_that_has_them() {
        let checked_in = tempfile::tempdir().unwrap();
        let generated = tempfile::tempdir().unwrap();
        std::fs::write(checked_in.path().join("motd"), "a").unwrap();
        std::fs::write(generated.path().join("motd"), "b").unwrap();
        std::fs::write(generated.path().join("initrd.img"), "c").unwrap();
        let text = "[[file]]\npath = \"/motd\"\nsource = \"motd\"\n[[file]]\npath = \"/initrd.img\"\nsource = \"initrd.img\"\n";
        let roots = vec![
            checked_in.path().to_path_buf(),
            generated.path().to_path_buf(),
        ];
        let spec = ImageSpec::parse(Path::new("esp.toml"), text.as_bytes(), roots).unwrap();
        let resolved: Vec<_> = spec.files.iter().map(|f| format!("{:?}", f)).collect();
        assert!(
            resolved[0].contains(&checked_in.path().join("motd").display().to_string()),
            "{resolved:?}"
        );
        assert!(
            resolved[1].contains(&generated.path().join("initrd.img").display().to_string()),
            "{resolved:?}"
        );
    }

    #[test]
    fn full_spec() {
        let text = r#"
remove = ["/var/cache/apt/**", "/etc/machine-id"]
[[layer]]
source = "extra.tar.zst"
[[dir]]
path = "/var/lib/app"
mode = "0750"
uid = 10
[[file]]
path = "/etc/hostname"
content = "icos\n"
[[file]]
path = "/usr/bin/ping"
source = "files/ping"
mode = "4755"
xattrs = { "security.capability" = "0100000200200000000000000000000000000000" }
[[symlink]]
path = "/etc/localtime"
target = "/usr/share/zoneinfo/UTC"
"#;
        let spec = parse(text).unwrap();
        assert_eq!(spec.layers[0].resolved, Path::new("/src/extra.tar.zst"));
        assert_eq!(spec.dirs[0].path, "var/lib/app");
        assert_eq!(spec.dirs[0].owner.mode, 0o750);
        assert_eq!(spec.dirs[0].owner.uid, 10);
        assert_eq!(spec.files[1].owner.mode, 0o4755);
        assert_eq!(spec.files[1].owner.xattrs["security.capability"].len(), 20);
        assert_eq!(spec.symlinks[0].target, "/usr/share/zoneinfo/UTC");
        assert_eq!(spec.sha256, Digest::of(text.as_bytes()));
        assert_eq!(spec.remove.len(), 2);
    }

    #[test]
    fn refuses_mistakes_naming_the_entry() {
        let cases = [
            ("bogus = 1", "unknown field `bogus`"),
            ("[[file]]\npath = \"/a\"\ncontent = \"x\"\nowner = \"root\"", "unknown field `owner`"),
            ("[[file]]\npath = \"/a\"", "[[file]] #1 (/a): set exactly one of `content`"),
            ("[[file]]\npath = \"/a\"\ncontent = \"x\"\nsource = \"y\"", "set exactly one"),
            ("[[file]]\npath = \"a\"\ncontent = \"x\"", "must be absolute"),
            ("[[file]]\npath = \"/a/../b\"\ncontent = \"x\"", "not canonical"),
            ("[[file]]\npath = \"/\"\ncontent = \"x\"", "can only be a [[dir]]"),
            ("[[dir]]\npath = \"/a\"\nmode = \"755x\"", "[[dir]] #1 (/a): mode \"755x\""),
            ("[[dir]]\npath = \"/a\"\nmode = 755", "invalid type"),
            ("[[file]]\npath = \"/a\"\nsource = \"/etc/passwd\"", "must be a relative path"),
            ("[[file]]\npath = \"/a\"\ncontent = \"x\"\nxattrs = { \"user.x\" = \"zz\" }", "must be hex"),
            ("[[file]]\npath = \"/a\"\ncontent = \"x\"\n[[symlink]]\npath = \"/a\"\ntarget = \"b\"",
             "[[symlink]] #1 (/a): path \"/a\" is already declared by [[file]] #1 (/a)"),
            ("remove = [\"var/log\"]", "start it with '/'"),
            ("remove = [\"/var/[log\"]", "remove[0]"),
            ("remove = [\"/var/../etc/**\"]", "remove[0] \"/var/../etc/**\": has a '.' or '..' component"),
            ("[[file]]\npath = \"/a\"\nsource = \"../x\"", "[[file]] #1 (/a): source \"../x\" has a '..' component"),
            ("[[symlink]]\npath = \"/a\"\ntarget = \"\"", "target must be non-empty"),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.starts_with("ic-os/image.toml: "), "{err}");
            assert!(
                err.contains(expected),
                "spec {text:?}: error {err:?} lacks {expected:?}"
            );
        }
    }
}
