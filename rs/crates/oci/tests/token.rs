//! The bearer-token flow against an in-test registry: challenge, token, retry; redirects to another
//! host without the Authorization header; plain http to non-loopback hosts refused.

mod common;

use common::fake_registry::{auth_server, blob_host, registry, REPO, TOKEN};
use common::*;
use icos_oci::{BaseRef, Image, OpenOptions};

fn open(
    host: std::net::SocketAddr,
    digest: &icos_common::Digest,
) -> Result<Image, icos_oci::OciError> {
    let reference: BaseRef = format!("docker://{host}/{REPO}@{digest}").parse().unwrap();
    Image::open(&reference, &OpenOptions::default())
}

#[test]
fn bearer_token_then_blobs_from_another_host_without_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let auth = auth_server(None);
    let cdn = blob_host(b.dir.clone());
    let reg = registry(
        b.dir.clone(),
        format!("http://{}/token", auth.addr),
        format!("http://{}", cdn.addr),
    );

    let image = open(reg.addr, &f.manifest.digest).unwrap();
    assert_eq!(image.config_digest(), f.config.digest);
    for (i, tar) in f.tars.iter().enumerate() {
        assert_eq!(&read_layer(&image, i).unwrap(), tar);
    }

    let registry_requests = reg.requests();
    assert!(
        !registry_requests[0].headers.contains_key("authorization"),
        "first request is anonymous"
    );
    assert!(
        registry_requests[1..]
            .iter()
            .all(|r| r.headers.get("authorization").map(String::as_str)
                == Some(&format!("Bearer {TOKEN}"))),
        "{registry_requests:?}"
    );
    let token_requests = auth.requests();
    assert_eq!(
        token_requests.len(),
        1,
        "one token serves the whole pull: {token_requests:?}"
    );
    assert!(
        token_requests[0].path.contains("service=test-registry"),
        "{:?}",
        token_requests[0]
    );
    assert!(
        token_requests[0]
            .path
            .contains("scope=repository%3Atest%2Fimg%3Apull"),
        "{:?}",
        token_requests[0]
    );
    assert!(
        !token_requests[0].headers.contains_key("authorization"),
        "no credentials configured"
    );

    let blob_requests = cdn.requests();
    assert_eq!(
        blob_requests.len(),
        1 + f.layers.len(),
        "config and layers come from the blob host"
    );
    for r in &blob_requests {
        assert!(
            !r.headers.contains_key("authorization"),
            "Authorization leaked to another host: {r:?}"
        );
    }
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));

    // A token realm on plain http elsewhere: refused before any connection.
    let reg = registry(
        b.dir.clone(),
        "http://192.0.2.1/token".into(),
        "http://127.0.0.2:1".into(),
    );
    let e = open(reg.addr, &f.manifest.digest).unwrap_err().to_string();
    assert!(
        e.contains("refusing plain http to 192.0.2.1") && e.contains("token realm"),
        "{e}"
    );

    // Blobs redirected to plain http elsewhere: refused.
    let auth = auth_server(None);
    let reg = registry(
        b.dir.clone(),
        format!("http://{}/token", auth.addr),
        "http://198.51.100.7".into(),
    );
    let e = open(reg.addr, &f.manifest.digest).unwrap_err().to_string();
    assert!(e.contains("refusing plain http to 198.51.100.7"), "{e}");
}

#[test]
fn a_refused_token_request_says_how_to_authenticate() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let auth = auth_server(Some("Basic nobody-has-this".into()));
    let reg = registry(
        b.dir.clone(),
        format!("http://{}/token", auth.addr),
        "http://127.0.0.2:1".into(),
    );
    let e = open(reg.addr, &f.manifest.digest).unwrap_err().to_string();
    assert!(
        e.contains("HTTP 401")
            && e.contains("ICOS_REGISTRY_USERNAME")
            && e.contains("ICOS_REGISTRY_PASSWORD"),
        "{e}"
    );
    assert!(e.contains(&reg.addr.to_string()), "{e}");

    let missing = icos_common::Digest::of(b"absent");
    let auth = auth_server(None);
    let reg = registry(
        b.dir.clone(),
        format!("http://{}/token", auth.addr),
        "http://127.0.0.2:1".into(),
    );
    let e = open(reg.addr, &missing).unwrap_err().to_string();
    assert!(
        e.contains("HTTP 404")
            && e.contains("MANIFEST_UNKNOWN")
            && e.contains(&missing.to_string()),
        "{e}"
    );
}
