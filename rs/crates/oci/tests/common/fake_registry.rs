//! A fake OCI registry that insists on a bearer token and redirects blob downloads to another
//! host, built on the bounded [`TestServer`](super::TestServer).

use std::fs;
use std::path::PathBuf;

use super::{Response, TestServer};

pub const TOKEN: &str = "good-token";
pub const REPO: &str = "test/img";

/// The token endpoint. With `basic`, it insists on that exact Authorization header.
pub fn auth_server(basic: Option<String>) -> TestServer {
    TestServer::start("127.0.0.1", move |req| {
        if !req.path.starts_with("/token") {
            return Response::new(404, "");
        }
        if basic
            .as_ref()
            .is_some_and(|b| req.headers.get("authorization") != Some(b))
        {
            return Response::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            );
        }
        Response::new(200, format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#))
    })
}

/// Serves `/cdn/<hex>` from a layout's blob directory, to anyone.
pub fn blob_host(layout: PathBuf) -> TestServer {
    TestServer::start("127.0.0.2", move |req| {
        match req.path.strip_prefix("/cdn/") {
            Some(rest) => {
                let hex = rest.split('?').next().unwrap_or("");
                match fs::read(layout.join("blobs/sha256").join(hex)) {
                    Ok(bytes) => Response::new(200, bytes),
                    Err(_) => Response::new(404, ""),
                }
            }
            None => Response::new(404, ""),
        }
    })
}

/// The registry: 401 with a Bearer challenge pointing at `realm` unless the token is presented;
/// manifests served directly, blobs redirected to `blob_base` + `/cdn/<hex>`.
pub fn registry(layout: PathBuf, realm: String, blob_base: String) -> TestServer {
    TestServer::start("127.0.0.1", move |req| {
        if req.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}"))
        {
            return Response::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                .header("WWW-Authenticate", &format!(r#"Bearer realm="{realm}",service="test-registry",scope="repository:{REPO}:pull""#));
        }
        if let Some(hex) = req
            .path
            .strip_prefix(&format!("/v2/{REPO}/manifests/sha256:"))
        {
            return match fs::read(layout.join("blobs/sha256").join(hex)) {
                Ok(bytes) => {
                    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    Response::new(200, bytes).header("Content-Type", &media_type)
                }
                Err(_) => Response::new(
                    404,
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ),
            };
        }
        if let Some(hex) = req.path.strip_prefix(&format!("/v2/{REPO}/blobs/sha256:")) {
            return Response::new(307, "")
                .header("Location", &format!("{blob_base}/cdn/{hex}?signature=abc"));
        }
        Response::new(404, "")
    })
}
