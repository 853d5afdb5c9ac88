//! Basic credentials for the token endpoint come from the environment. This file holds a single
//! test on purpose: the environment is process-wide, and each test file is its own process.

mod common;

use common::fake_registry::{auth_server, blob_host, registry, REPO};
use common::*;
use icos_oci::{BaseRef, Image, OpenOptions, PASSWORD_ENV, USERNAME_ENV};

#[test]
fn credentials_from_the_environment_go_to_the_token_endpoint_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    // base64("alice:s3cret"), computed independently: printf 'alice:s3cret' | base64
    let auth = auth_server(Some("Basic YWxpY2U6czNjcmV0".into()));
    let cdn = blob_host(b.dir.clone());
    let reg = registry(
        b.dir.clone(),
        format!("http://{}/token", auth.addr),
        format!("http://{}", cdn.addr),
    );
    let reference: BaseRef = format!("docker://{}/{REPO}@{}", reg.addr, f.manifest.digest)
        .parse()
        .unwrap();

    std::env::set_var(USERNAME_ENV, "alice");
    let e = Image::open(&reference, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("set both"), "{e}");

    std::env::set_var(PASSWORD_ENV, "s3cret");
    let image = Image::open(&reference, &OpenOptions::default()).unwrap();
    assert_eq!(read_layer(&image, 2).unwrap(), f.tars[2]);
    assert_eq!(auth.requests().len(), 1);
    for r in reg.requests().iter().chain(cdn.requests().iter()) {
        let header = r
            .headers
            .get("authorization")
            .map(String::as_str)
            .unwrap_or("");
        assert!(
            !header.starts_with("Basic"),
            "credentials leaked beyond the token endpoint: {r:?}"
        );
    }
    std::env::remove_var(USERNAME_ENV);
    std::env::remove_var(PASSWORD_ENV);
}
