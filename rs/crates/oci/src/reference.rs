//! Base references (`oci:`, `oci-archive:`, `docker-archive:`, `docker://`), always pinned by digest,
//! and platforms (`linux/amd64`, `linux/arm64/v8`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use icos_common::Digest;

use crate::error::OciError;

/// Where a base image lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// An OCI image layout directory.
    OciDir(PathBuf),
    /// A tar archive of an OCI image layout.
    OciArchive(PathBuf),
    /// A `docker save` archive (legacy, or Docker ≥ 25 with an OCI layout inside).
    DockerArchive(PathBuf),
    /// An OCI distribution registry: `host[:port]` and repository path.
    Registry { host: String, repository: String },
}

impl Transport {
    fn prefix(&self) -> &'static str {
        match self {
            Transport::OciDir(_) => "oci:",
            Transport::OciArchive(_) => "oci-archive:",
            Transport::DockerArchive(_) => "docker-archive:",
            Transport::Registry { .. } => "docker://",
        }
    }

    /// The local file or directory, for the file-based transports.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Transport::OciDir(p) | Transport::OciArchive(p) | Transport::DockerArchive(p) => {
                Some(p)
            }
            Transport::Registry { .. } => None,
        }
    }
}

/// A base image reference, always pinned by a sha256 digest.
///
/// `Display` prints the same string `FromStr` accepts, so references round-trip through manifests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseRef {
    transport: Transport,
    /// The location as written (path or `host/repo`), kept verbatim so `Display` round-trips.
    location: String,
    digest: Digest,
}

impl BaseRef {
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The pinned digest: a manifest, an index, or (docker-archive) an image ID.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The same location pinned to another digest (for example the manifest chosen from an index).
    pub fn with_digest(&self, digest: Digest) -> BaseRef {
        BaseRef {
            digest,
            ..self.clone()
        }
    }
}

const TRANSPORTS_HELP: &str =
    "use one of oci:DIR@sha256:<hex>, oci-archive:FILE.tar@sha256:<hex>, \
     docker-archive:FILE.tar@sha256:<hex>, docker://HOST[:PORT]/REPO@sha256:<hex>";

fn invalid(input: &str, problem: impl Into<String>) -> OciError {
    OciError::InvalidReference {
        input: input.to_string(),
        problem: problem.into(),
    }
}

/// Explains how to find the digest for an unpinned reference of each transport.
fn pin_advice(prefix: &str, location: &str) -> String {
    match prefix {
        "docker://" => {
            let untagged = strip_tag(location);
            format!(
                "it is not pinned by digest: find the digest with `skopeo inspect --format '{{{{.Digest}}}}' \
                 docker://{location}` or `crane digest {location}`, then write docker://{untagged}@sha256:<hex>"
            )
        }
        "docker-archive:" => {
            let file = location.split(':').next().unwrap_or(location);
            format!(
                "it is not pinned by digest: use the image ID (`docker image inspect --format '{{{{.Id}}}}' IMAGE`, \
                 or the Config entry of manifest.json in the archive), then write docker-archive:{file}@sha256:<hex>"
            )
        }
        _ => {
            let dir = location.split(':').next().unwrap_or(location);
            format!(
                "it is not pinned by digest: find the manifest digest with `skopeo inspect --format '{{{{.Digest}}}}' \
                 {prefix}{location}` (or read {dir}/index.json), then write {prefix}{dir}@sha256:<hex>"
            )
        }
    }
}

/// `host/repo:tag` → `host/repo` (a colon after the last slash is a tag, one before it a port).
fn strip_tag(location: &str) -> &str {
    let last_slash = location.rfind('/').unwrap_or(0);
    match location[last_slash..].find(':') {
        Some(i) => &location[..last_slash + i],
        None => location,
    }
}

impl FromStr for BaseRef {
    type Err = OciError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let prefixes = ["oci-archive:", "oci:", "docker-archive:", "docker://"];
        let Some(prefix) = prefixes.iter().copied().find(|p| input.starts_with(p)) else {
            return Err(invalid(
                input,
                format!("unknown or missing transport: {TRANSPORTS_HELP}"),
            ));
        };
        let rest = &input[prefix.len()..];
        let Some((location, digest_text)) = rest.rsplit_once('@') else {
            return Err(invalid(input, pin_advice(prefix, rest)));
        };
        if !digest_text.contains(':') {
            return Err(invalid(input, pin_advice(prefix, rest)));
        }
        let digest: Digest = digest_text
            .parse()
            .map_err(|e| invalid(input, format!("malformed digest: {e}")))?;
        if location.is_empty() {
            return Err(invalid(
                input,
                format!("no location before '@': {TRANSPORTS_HELP}"),
            ));
        }
        let transport = match prefix {
            "oci:" => Transport::OciDir(PathBuf::from(location)),
            "oci-archive:" => Transport::OciArchive(PathBuf::from(location)),
            "docker-archive:" => Transport::DockerArchive(PathBuf::from(location)),
            _ => parse_registry_location(input, location)?,
        };
        Ok(BaseRef {
            transport,
            location: location.to_string(),
            digest,
        })
    }
}

fn parse_registry_location(input: &str, location: &str) -> Result<Transport, OciError> {
    let Some((host, repository)) = location.split_once('/') else {
        return Err(invalid(
            input,
            "no registry host: write docker://HOST[:PORT]/REPO@sha256:<hex> (short Docker Hub names are not expanded)",
        ));
    };
    validate_host(input, host)?;
    if repository.contains(':') {
        return Err(invalid(
            input,
            format!(
                "has both a tag and a digest: drop the tag, the digest alone pins the image (docker://{host}/{}@…)",
                strip_tag(repository)
            ),
        ));
    }
    validate_repository(input, repository)?;
    Ok(Transport::Registry {
        host: host.to_string(),
        repository: repository.to_string(),
    })
}

fn validate_host(input: &str, host: &str) -> Result<(), OciError> {
    // `[v6addr]:port`, or `name:port`, or `name`.
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(invalid(
                input,
                format!("registry host {host:?} has an unclosed '['"),
            ));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(
                input,
                format!("registry host {host:?} is not a valid IPv6 address"),
            ));
        }
        match after {
            "" => (None, None),
            p if p.starts_with(':') => (None, Some(&p[1..])),
            _ => {
                return Err(invalid(
                    input,
                    format!("registry host {host:?} has junk after ']'"),
                ))
            }
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !name.starts_with(['-', '.'])
            && !name.ends_with('-');
        if !ok {
            return Err(invalid(
                input,
                format!("registry host {name:?} is not a valid host name or address"),
            ));
        }
    }
    if let Some(port) = port {
        if port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
            return Err(invalid(
                input,
                format!("registry port {port:?} is not a number from 1 to 65535"),
            ));
        }
    }
    Ok(())
}

/// The distribution spec's repository name grammar: lowercase path components of `[a-z0-9]+`
/// joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(input: &str, repository: &str) -> Result<(), OciError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'a'..=b'z' | b'0'..=b'9' => i += 1,
                b'-' => i += b[i..].iter().take_while(|&&x| x == b'-').count(),
                b'_' => {
                    let run = b[i..].iter().take_while(|&&x| x == b'_').count();
                    if run > 2 {
                        return false;
                    }
                    i += run;
                }
                b'.' => i += 1,
                _ => return false,
            }
            // a separator must be followed by a letter or digit
            if i < b.len()
                && matches!(b[i - 1], b'.' | b'_' | b'-')
                && !b[i].is_ascii_alphanumeric()
            {
                return false;
            }
        }
        true
    };
    if repository.is_empty() || !repository.split('/').all(component_ok) {
        return Err(invalid(
            input,
            format!(
                "repository {repository:?} is not a valid name: lowercase letters, digits and separators \
                 (. _ __ -) in '/'-separated components"
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}@{}",
            self.transport.prefix(),
            self.location,
            self.digest
        )
    }
}

/// An image platform: `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// Whether an index entry's platform is this one. `arm64` without a variant means `v8`, as in
    /// containerd's platform matching; any other variant must match exactly.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let normalize = |arch: &str, v: Option<&str>| -> Option<String> {
            match (arch, v) {
                ("arm64", Some("v8")) | (_, Some("")) => None,
                (_, v) => v.map(str::to_string),
            }
        };
        self.os == os
            && self.architecture == architecture
            && normalize(&self.architecture, self.variant.as_deref())
                == normalize(architecture, variant)
    }
}

impl FromStr for Platform {
    type Err = OciError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = input.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'_'
                        || b == b'-'
                        || b == b'.'
                })
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid(p)) {
            return Err(OciError::InvalidPlatform {
                input: input.to_string(),
                problem: "write it as os/architecture[/variant] in lowercase, e.g. linux/amd64 or linux/arm64/v8".into(),
            });
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn round_trips_every_transport() {
        for s in [
            format!("oci:out/base@{D}"),
            format!("oci-archive:/abs/base.tar@{D}"),
            format!("docker-archive:save.tar@{D}"),
            format!("docker://127.0.0.1:5000/ic/base@{D}"),
            format!("docker://[::1]:5000/a/b-c_d.e@{D}"),
            format!("docker://registry.example.com/library/debian@{D}"),
        ] {
            let r: BaseRef = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
            assert_eq!(r.digest().to_string(), D);
        }
        let r: BaseRef = format!("docker://localhost:5000/x/y@{D}").parse().unwrap();
        assert_eq!(
            r.transport(),
            &Transport::Registry {
                host: "localhost:5000".into(),
                repository: "x/y".into()
            }
        );
    }

    #[test]
    fn refuses_unpinned_and_malformed() {
        let e = "docker://registry.example.com/debian:12"
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("not pinned"), "{e}");
        assert!(
            e.contains("crane digest registry.example.com/debian:12"),
            "{e}"
        );
        assert!(
            e.contains("docker://registry.example.com/debian@sha256:<hex>"),
            "{e}"
        );
        let e = "oci:layout:latest"
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("oci:layout@sha256:<hex>"), "{e}");
        let e = "docker-archive:save.tar"
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("image ID"), "{e}");
        let e = "oci:dir@sha256:abc"
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed digest"), "{e}");
        let e = format!("oci:dir@md5:{}", &D[7..])
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("malformed digest") && e.contains("only sha256"),
            "{e}"
        );
        let e = format!("debian@{D}")
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown or missing transport"), "{e}");
        let e = format!("docker://debian@{D}")
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no registry host"), "{e}");
        for bad_repo in ["Repo", "a-.b", "a..b", "a___b", "-a", "a/"] {
            let e = format!("docker://h.example/{bad_repo}@{D}")
                .parse::<BaseRef>()
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a valid name"), "{bad_repo}: {e}");
        }
        let e = format!("docker://h.example/r:tag@{D}")
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop the tag"), "{e}");
        let e = format!("docker://h.example:99999/r@{D}")
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        let e = format!("oci:@{D}")
            .parse::<BaseRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no location"), "{e}");
    }

    #[test]
    fn platforms() {
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches("linux", "arm64", None));
        assert!(p.matches("linux", "arm64", Some("v8")));
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(!arm.matches("linux", "arm", Some("v7")));
        assert!(Platform::default().matches("linux", "amd64", None));
        assert!(!Platform::default().matches("linux", "arm64", None));
        assert!("linux".parse::<Platform>().is_err());
        assert!("Linux/AMD64".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
    }
}
