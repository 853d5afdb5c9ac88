//! Pulls by digest from a real OCI distribution registry (Debian's docker-registry) on 127.0.0.1,
//! with the test image pushed by skopeo.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use icos_oci::{BaseRef, Image, OpenOptions};

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("docker-registry (apt docker-registry) must be installed");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registry.answers() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn push(layout: &std::path::Path, tag: &str, destination: &str) {
    require_tool("skopeo", "skopeo");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{destination}")));
}

#[test]
fn pulls_by_index_and_manifest_digest_and_the_store_makes_the_second_open_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let MultiLayout { b, amd, arm, index } =
        multi_platform_layout(&tmp.path().join("layout"), 11, 12);

    let mut registry = Registry::start();
    push(
        &b.dir,
        "multi",
        &format!("{}/icos/base:multi", registry.host()),
    );

    // By index digest, both platforms; no store: streamed and verified.
    let by_index: BaseRef = format!("docker://{}/icos/base@{}", registry.host(), index.digest)
        .parse()
        .unwrap();
    for (platform, fixture) in [("linux/amd64", &amd), ("linux/arm64", &arm)] {
        let image = Image::open(
            &by_index,
            &OpenOptions {
                platform: platform.parse().unwrap(),
                store: None,
            },
        )
        .unwrap();
        assert_eq!(image.index_digest(), Some(index.digest));
        assert_eq!(image.manifest_digest(), fixture.manifest.digest);
        assert_eq!(image.config_digest(), fixture.config.digest);
        for (i, tar) in fixture.tars.iter().enumerate() {
            assert_eq!(&read_layer(&image, i).unwrap(), tar, "{platform} layer {i}");
        }
    }

    // By manifest digest, with a store: everything lands in the store, verified.
    let store = tmp.path().join("store");
    let by_manifest: BaseRef = format!(
        "docker://{}/icos/base@{}",
        registry.host(),
        amd.manifest.digest
    )
    .parse()
    .unwrap();
    let opts = OpenOptions {
        store: Some(store.clone()),
        ..OpenOptions::default()
    };
    let image = Image::open(&by_manifest, &opts).unwrap();
    for (i, layer) in amd.layers.iter().enumerate() {
        let mut seen = 0;
        image.verify_layer(i, &mut |n| seen += n).unwrap();
        assert_eq!(seen, layer.size);
    }
    for d in [&amd.manifest, &amd.config].into_iter().chain(&amd.layers) {
        let stored = store.join("blobs/sha256").join(d.digest.hex());
        assert_eq!(
            sha256sum(&stored),
            d.digest.to_string(),
            "store holds {}",
            d.digest
        );
    }
    let leftovers = hidden_entries(&store.join("blobs/sha256"));
    assert!(
        leftovers.is_empty(),
        "temporary files left in the store: {leftovers:?}"
    );

    // The registry goes away: the second open reads nothing from the network.
    registry.stop();
    assert!(!registry.answers());
    let offline = Image::open(&by_manifest, &opts).unwrap();
    assert_eq!(offline.manifest_digest(), amd.manifest.digest);
    for (i, tar) in amd.tars.iter().enumerate() {
        assert_eq!(&read_layer(&offline, i).unwrap(), tar);
    }
    let out = tmp.path().join("offline-layout");
    offline.write_layout(&out).unwrap();
    assert_eq!(
        sha256sum(&out.join("blobs/sha256").join(amd.manifest.digest.hex())),
        amd.manifest.digest.to_string()
    );

    // Without the store, the same open needs the network and says so.
    let e = Image::open(&by_manifest, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot reach") && e.contains(&registry.host()),
        "{e}"
    );

    // A corrupted store file is reported with the file to delete.
    let layer_file = store.join("blobs/sha256").join(amd.layers[1].digest.hex());
    let mut bytes = fs::read(&layer_file).unwrap();
    bytes[10] ^= 1;
    fs::write(&layer_file, &bytes).unwrap();
    let image = Image::open(&by_manifest, &opts).unwrap();
    let e = read_layer(&image, 1).unwrap_err().to_string();
    assert!(
        e.contains("does not match") && e.contains("delete it"),
        "{e}"
    );
}

#[test]
fn unknown_digests_and_repositories_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, f) = simple_layout(&tmp.path().join("layout"));
    let registry = Registry::start();
    push(
        &b.dir,
        "latest",
        &format!("{}/icos/one:latest", registry.host()),
    );

    let missing = icos_common::Digest::of(b"not there");
    let e = Image::open(
        &format!("docker://{}/icos/one@{missing}", registry.host())
            .parse()
            .unwrap(),
        &OpenOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("HTTP 404")
            && e.contains("MANIFEST_UNKNOWN")
            && e.contains(&missing.to_string()),
        "{e}"
    );

    let e = Image::open(
        &format!(
            "docker://{}/icos/other@{}",
            registry.host(),
            f.manifest.digest
        )
        .parse()
        .unwrap(),
        &OpenOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("HTTP 404") && e.contains("icos/other"), "{e}");
}
