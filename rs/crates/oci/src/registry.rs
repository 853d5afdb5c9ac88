//! A small client for the OCI distribution API (v2): manifests and blobs by digest, anonymous or
//! with bearer tokens, plain http only to loopback hosts, redirects followed by hand so that the
//! Authorization header never leaves the registry's origin.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use icos_common::mapped::{MappedBytes, MappedFile};
use icos_common::Digest;
use url::{Host, Url};

use crate::error::OciError;
use crate::media::MANIFEST_ACCEPT;
use crate::source::{
    blob_label, copy_with_progress, stream_error, BlobKind, BlobSource, RawBlob, MAX_DOCUMENT_SIZE,
};
use crate::store::BlobStore;
use crate::verify::VerifyingReader;

/// Environment variable holding the user name sent (with [`PASSWORD_ENV`]) as Basic credentials to
/// the registry's token endpoint (or to the registry itself if it asks for Basic auth).
pub const USERNAME_ENV: &str = "ICOS_REGISTRY_USERNAME";
/// Environment variable holding the password or access token that goes with [`USERNAME_ENV`].
pub const PASSWORD_ENV: &str = "ICOS_REGISTRY_PASSWORD";

const MAX_REDIRECTS: usize = 5;
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
const MAX_ERROR_BODY: u64 = 4096;

pub(crate) struct Registry {
    reference: String,
    /// `host[:port]` as written in the reference.
    registry: String,
    repository: String,
    origin: Url,
    agent: ureq::Agent,
    credentials: Option<(String, String)>,
    /// The Authorization header value for the registry's origin, once we have one.
    authorization: Mutex<Option<String>>,
    store: Option<BlobStore>,
}

/// Whether plain http may be used: loopback addresses and `localhost` only (no DNS lookup).
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback(),
    }
}

/// Refuses any URL that is not https, except http to a loopback host.
pub(crate) fn check_transport_security(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host().as_ref().is_some_and(is_loopback) => Ok(()),
        "http" => Err(format!(
            "refusing plain http to {} ({url}): only loopback hosts (127.0.0.0/8, ::1, localhost) may be \
             reached without TLS",
            url.host_str().unwrap_or("?")
        )),
        other => Err(format!("refusing URL {url}: scheme {other:?} is not https")),
    }
}

fn credentials_from_env() -> Result<Option<(String, String)>, String> {
    match (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        (Ok(u), Ok(p)) => Ok(Some((u, p))),
        (Err(_), Err(_)) => Ok(None),
        _ => Err(format!(
            "set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither"
        )),
    }
}

impl Registry {
    pub fn new(
        reference: &str,
        host: &str,
        repository: &str,
        store: Option<BlobStore>,
    ) -> Result<Self, OciError> {
        let err = |problem: String| OciError::Registry {
            reference: reference.to_string(),
            registry: host.to_string(),
            problem,
        };
        let probe = Url::parse(&format!("http://{host}/"))
            .map_err(|e| err(format!("invalid host: {e}")))?;
        let scheme = if probe.host().as_ref().is_some_and(is_loopback) {
            "http"
        } else {
            "https"
        };
        let origin = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| err(format!("invalid host: {e}")))?;
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .user_agent(concat!("icos-oci/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Registry {
            reference: reference.to_string(),
            registry: host.to_string(),
            repository: repository.to_string(),
            origin,
            agent,
            credentials: credentials_from_env().map_err(err)?,
            authorization: Mutex::new(None),
            store,
        })
    }

    fn err(&self, problem: impl Into<String>) -> OciError {
        OciError::Registry {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            problem: problem.into(),
        }
    }

    /// GET with manual redirects and one authentication round trip per request.
    fn get(&self, path: &str, accept: &str) -> Result<(ureq::Response, Url), OciError> {
        let mut url = self
            .origin
            .join(path)
            .map_err(|e| self.err(format!("bad request path {path:?}: {e}")))?;
        let mut redirects = 0;
        let mut authenticated = false;
        loop {
            check_transport_security(&url).map_err(|p| self.err(p))?;
            let same_origin = url.origin() == self.origin.origin();
            // Identity encoding: blobs are verified byte for byte as stored.
            let mut request = self
                .agent
                .get(url.as_str())
                .set("Accept", accept)
                .set("Accept-Encoding", "identity");
            if same_origin {
                if let Some(value) = self.authorization.lock().expect("lock").clone() {
                    request = request.set("Authorization", &value);
                }
            }
            match request.call() {
                Ok(response) if (300..400).contains(&response.status()) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(
                            self.err(format!("more than {MAX_REDIRECTS} redirects for {path}"))
                        );
                    }
                    let Some(location) = response.header("location") else {
                        return Err(self.err(format!(
                            "HTTP {} without a Location for {url}",
                            response.status()
                        )));
                    };
                    url = url.join(location).map_err(|e| {
                        self.err(format!("bad redirect {location:?} from {url}: {e}"))
                    })?;
                }
                Ok(response) => return Ok((response, url)),
                Err(ureq::Error::Status(401, response)) if same_origin && !authenticated => {
                    authenticated = true;
                    self.authenticate(&response)?;
                }
                Err(ureq::Error::Status(code, response)) => {
                    return Err(self.status_error(&url, code, response))
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(self.err(format!("cannot reach the registry: {t}")))
                }
            }
        }
    }

    fn status_error(&self, url: &Url, code: u16, response: ureq::Response) -> OciError {
        let mut body = Vec::new();
        let _ = response
            .into_reader()
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut body);
        let detail = registry_error_detail(&body);
        let advice = match code {
            401 | 403 => format!(
                " (access denied: if the repository needs an account, set {USERNAME_ENV} and {PASSWORD_ENV})"
            ),
            404 => " (not found: check the repository name and the digest)".to_string(),
            _ => String::new(),
        };
        self.err(format!("HTTP {code} for {url}{detail}{advice}"))
    }

    /// Answers a 401 challenge: a bearer token from the realm, or Basic credentials.
    fn authenticate(&self, response: &ureq::Response) -> Result<(), OciError> {
        let challenges: Vec<(String, BTreeMap<String, String>)> = response
            .all("www-authenticate")
            .into_iter()
            .filter_map(parse_challenge)
            .collect();
        let basic = |(user, password): &(String, String)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {encoded}")
        };
        if let Some((_, params)) = challenges
            .iter()
            .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        {
            let token = self.fetch_token(params, self.credentials.as_ref().map(basic))?;
            *self.authorization.lock().expect("lock") = Some(format!("Bearer {token}"));
            return Ok(());
        }
        if challenges
            .iter()
            .any(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        {
            let Some(credentials) = &self.credentials else {
                return Err(self.err(format!(
                    "the registry asks for Basic authentication: set {USERNAME_ENV} and {PASSWORD_ENV}"
                )));
            };
            *self.authorization.lock().expect("lock") = Some(basic(credentials));
            return Ok(());
        }
        Err(self.err("HTTP 401 without a Bearer or Basic WWW-Authenticate challenge"))
    }

    fn fetch_token(
        &self,
        params: &BTreeMap<String, String>,
        basic: Option<String>,
    ) -> Result<String, OciError> {
        let Some(realm) = params.get("realm") else {
            return Err(self.err("the Bearer challenge has no realm"));
        };
        let mut url = Url::parse(realm)
            .map_err(|e| self.err(format!("token realm {realm:?} is not a URL: {e}")))?;
        check_transport_security(&url).map_err(|p| self.err(format!("token realm: {p}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let default_scope = format!("repository:{}:pull", self.repository);
            query.append_pair("scope", params.get("scope").unwrap_or(&default_scope));
        }
        let mut request = self
            .agent
            .get(url.as_str())
            .set("Accept", "application/json");
        if let Some(basic) = basic {
            request = request.set("Authorization", &basic);
        }
        let response = match request.call() {
            Ok(r) if r.status() == 200 => r,
            Ok(r) => {
                return Err(self.err(format!("token endpoint {url} answered HTTP {}", r.status())))
            }
            Err(ureq::Error::Status(code, r)) => {
                let mut body = Vec::new();
                let _ = r.into_reader().take(MAX_ERROR_BODY).read_to_end(&mut body);
                return Err(self.err(format!(
                    "token endpoint {url} refused: HTTP {code}{} (if the repository needs an account, set \
                     {USERNAME_ENV} and {PASSWORD_ENV})",
                    registry_error_detail(&body)
                )));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(self.err(format!("cannot reach the token endpoint: {t}")))
            }
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_TOKEN_RESPONSE)
            .read_to_end(&mut body)
            .map_err(|e| self.err(format!("reading the token from {url}: {e}")))?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            self.err(format!(
                "token endpoint {url} answered something that is not a token: {e}"
            ))
        })?;
        match parsed.token.or(parsed.access_token) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(self.err(format!("token endpoint {url} answered without a token"))),
        }
    }

    fn endpoint(&self, kind: BlobKind, digest: &Digest) -> String {
        let segment = match kind {
            BlobKind::Manifest => "manifests",
            BlobKind::Blob => "blobs",
        };
        format!("/v2/{}/{segment}/{digest}", self.repository)
    }

    fn download(&self, digest: &Digest, kind: BlobKind) -> Result<(ureq::Response, Url), OciError> {
        let accept = match kind {
            BlobKind::Manifest => MANIFEST_ACCEPT,
            BlobKind::Blob => "application/octet-stream, */*",
        };
        self.get(&self.endpoint(kind, digest), accept)
    }

    fn store_location(&self, store: &BlobStore, digest: &Digest) -> String {
        format!(
            "blob store file {} (delete it to download it again)",
            store.path(digest).display()
        )
    }
}

/// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}` → `: MANIFEST_UNKNOWN: …`
fn registry_error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|x| format!("{}: {}", x.code, x.message))
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}

/// Parses one `WWW-Authenticate` value: `Bearer realm="…",service="…",scope="…"`.
/// Written by hand because no well-kept crate parses RFC 7235 challenges for a blocking client,
/// and we need only one challenge of auth-params with quoted strings (which may contain commas).
fn parse_challenge(value: &str) -> Option<(String, BTreeMap<String, String>)> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = chars
                .by_ref()
                .take_while(|c| *c != ',')
                .collect::<String>()
                .trim()
                .to_string();
        }
        params.insert(key, val);
    }
    Some((scheme.to_string(), params))
}

fn content_type(response: &ureq::Response) -> Option<String> {
    response
        .header("content-type")
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
}

impl BlobSource for Registry {
    fn open_blob(
        &self,
        digest: &Digest,
        kind: BlobKind,
        size: Option<u64>,
        what: &str,
    ) -> Result<RawBlob<'_>, OciError> {
        if let Some(store) = &self.store {
            if let Some((file, _)) = store.open(digest)? {
                return Ok(RawBlob {
                    reader: Box::new(file),
                    location: self.store_location(store, digest),
                    content_type: None,
                });
            }
        }
        let (response, url) = self.download(digest, kind)?;
        let location = url.to_string();
        let content_type = content_type(&response);
        let Some(store) = &self.store else {
            return Ok(RawBlob {
                reader: response.into_reader(),
                location,
                content_type,
            });
        };
        let label = blob_label(&self.reference, what, digest, &location);
        match (kind, size) {
            (BlobKind::Blob, Some(size)) => {
                store.put_stream(
                    &mut response.into_reader(),
                    digest,
                    size,
                    label,
                    &self.reference,
                    &mut |_| {},
                )?;
            }
            _ => {
                // A document of unknown size: read it capped, verify, then store.
                let mut bytes = Vec::new();
                response
                    .into_reader()
                    .take(MAX_DOCUMENT_SIZE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| {
                        self.err(format!("reading {what} {digest} from {location}: {e}"))
                    })?;
                if Digest::of(&bytes) != *digest || size.is_some_and(|s| s != bytes.len() as u64) {
                    // Not stored; let the caller's verification produce the detailed message.
                    return Ok(RawBlob {
                        reader: Box::new(Cursor::new(bytes)),
                        location,
                        content_type,
                    });
                }
                store.put_verified(digest, &bytes)?;
                return Ok(RawBlob {
                    reader: Box::new(Cursor::new(bytes)),
                    location,
                    content_type,
                });
            }
        }
        let (file, _) = store
            .open(digest)?
            .ok_or_else(|| self.err(format!("{what} {digest} vanished from the store")))?;
        Ok(RawBlob {
            reader: Box::new(file),
            location: self.store_location(store, digest),
            content_type,
        })
    }

    fn stored_size(&self, digest: &Digest, _: &str) -> Result<Option<u64>, OciError> {
        match &self.store {
            Some(store) => Ok(store.open(digest)?.map(|(_, len)| len)),
            None => Ok(None),
        }
    }

    fn fetch(
        &self,
        digest: &Digest,
        size: u64,
        what: &str,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), OciError> {
        let store = match &self.store {
            Some(store) if store.open(digest)?.is_none() => store,
            // Already stored (verify it) or no store (verify the download).
            _ => {
                let raw = self.open_blob(digest, BlobKind::Blob, Some(size), what)?;
                let label = blob_label(&self.reference, what, digest, &raw.location);
                let mut verified = VerifyingReader::new(raw.reader, *digest, size, label);
                copy_with_progress(&mut verified, &mut std::io::sink(), on_bytes)
                    .map_err(|e| stream_error(&self.reference, e))?;
                return Ok(());
            }
        };
        let (response, url) = self.download(digest, BlobKind::Blob)?;
        let label = blob_label(&self.reference, what, digest, url.as_str());
        store.put_stream(
            &mut response.into_reader(),
            digest,
            size,
            label,
            &self.reference,
            on_bytes,
        )
    }

    fn map_blob(
        &self,
        digest: &Digest,
        what: &str,
    ) -> Result<Option<(MappedBytes, String)>, OciError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let Some((file, _)) = store.open(digest)? else {
            return Ok(None); // streamed (and stored) the first time
        };
        let location = self.store_location(store, digest);
        let mapped = MappedFile::new(file).map_err(|e| {
            OciError::blob(
                &self.reference,
                what,
                digest,
                format!("cannot map {location}: {e}"),
            )
        })?;
        Ok(Some((mapped.whole(), location)))
    }

    fn reference(&self) -> &str {
        &self.reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (_, p) = parse_challenge(r#"Basic realm="x \"y\"", charset=UTF-8"#).unwrap();
        assert_eq!(p["realm"], r#"x "y""#);
        assert_eq!(p["charset"], "UTF-8");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://example.com/",
            "http://127.0.0.1:5000/",
            "http://127.9.9.9/",
            "http://[::1]:80/",
            "http://LOCALHOST/",
        ] {
            assert!(
                check_transport_security(&Url::parse(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "ftp://127.0.0.1/",
        ] {
            let e = check_transport_security(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(e.contains("refusing"), "{bad}: {e}");
        }
    }
}
