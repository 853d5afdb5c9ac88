//! Test fixtures: real OCI layouts built blob by blob (deterministically), tars of them, and a
//! tiny bounded HTTP server for registry protocol tests.
#![allow(dead_code)]

pub mod fake_registry;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use icos_common::Digest;
use icos_oci::media::*;
use icos_oci::Image;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Desc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Desc {
    pub fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size})
    }
}

/// An image written into a layout: its manifest, config and layers, and each layer's tar.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub manifest: Desc,
    pub config: Desc,
    pub layers: Vec<Desc>,
    pub tars: Vec<Vec<u8>>,
}

/// Writes an OCI image layout blob by blob.
pub struct LayoutBuilder {
    pub dir: PathBuf,
}

impl LayoutBuilder {
    pub fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutBuilder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Desc {
        let digest = Digest::of(bytes);
        fs::write(self.blob_path(&digest), bytes).unwrap();
        Desc {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
        }
    }

    pub fn json_blob(&self, media_type: &str, value: &Value) -> Desc {
        self.blob(media_type, &serde_json::to_vec(value).unwrap())
    }

    /// An image whose layers are `(media type, stored bytes, uncompressed tar)`.
    pub fn image(&self, layers: &[(&str, Vec<u8>, Vec<u8>)], architecture: &str) -> Fixture {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(_, _, tar)| Digest::of(tar).to_string())
            .collect();
        let config = self.json_blob(
            OCI_CONFIG,
            &json!({"architecture": architecture, "os": "linux", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
        );
        let layer_descs: Vec<Desc> = layers
            .iter()
            .map(|(mt, stored, _)| self.blob(mt, stored))
            .collect();
        let manifest = self.json_blob(
            OCI_MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(),
                    "layers": layer_descs.iter().map(Desc::json).collect::<Vec<_>>()}),
        );
        Fixture {
            manifest,
            config,
            layers: layer_descs,
            tars: layers.iter().map(|l| l.2.clone()).collect(),
        }
    }

    /// An index blob over `(manifest, "os/arch[/variant]")`.
    pub fn index(&self, entries: &[(&Desc, &str)]) -> Desc {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(d, platform)| {
                let mut v = d.json();
                let parts: Vec<&str> = platform.split('/').collect();
                let mut p = json!({"os": parts[0], "architecture": parts[1]});
                if let Some(variant) = parts.get(2) {
                    p["variant"] = json!(variant);
                }
                v["platform"] = p;
                v
            })
            .collect();
        self.json_blob(
            OCI_INDEX,
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        )
    }

    /// index.json listing `(descriptor, tag)`.
    pub fn write_index_json(&self, entries: &[(&Desc, &str)]) {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(d, tag)| {
                let mut v = d.json();
                v["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
                v
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// A deterministic tar of `(path, content)` regular files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Deterministic pseudo-random bytes (so compressed layers are bigger than one read buffer).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Three layers, one per compression: plain tar, tar+gzip, tar+zstd.
pub fn standard_layers(seed: u64) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let big = noise(300_000, seed);
    let plain = layer_tar(&[("etc/hostname", b"icos\n"), ("bin/blob", &big)]);
    let gz = layer_tar(&[
        ("etc/motd", format!("hello {seed}\n").as_bytes()),
        ("usr/data", &big[..200_000]),
    ]);
    let zs = layer_tar(&[("var/lib/x", b"zstd layer\n"), ("usr/more", &big[50_000..])]);
    vec![
        (OCI_LAYER_TAR, plain.clone(), plain),
        (OCI_LAYER_TAR_GZIP, gzip(&gz), gz),
        (OCI_LAYER_TAR_ZSTD, zstd(&zs), zs),
    ]
}

/// A layout with one three-layer image tagged `latest`.
pub fn simple_layout(dir: &Path) -> (LayoutBuilder, Fixture) {
    let b = LayoutBuilder::new(dir);
    let f = b.image(&standard_layers(1), "amd64");
    b.write_index_json(&[(&f.manifest, "latest")]);
    (b, f)
}

/// A layout whose image index (tagged `multi`) holds two three-layer images: linux/amd64 built
/// from `standard_layers(amd_seed)` and linux/arm64/v8 from `standard_layers(arm_seed)`.
pub struct MultiLayout {
    pub b: LayoutBuilder,
    pub amd: Fixture,
    pub arm: Fixture,
    pub index: Desc,
}

pub fn multi_platform_layout(dir: &Path, amd_seed: u64, arm_seed: u64) -> MultiLayout {
    let b = LayoutBuilder::new(dir);
    let amd = b.image(&standard_layers(amd_seed), "amd64");
    let arm = b.image(&standard_layers(arm_seed), "arm64");
    let index = b.index(&[
        (&amd.manifest, "linux/amd64"),
        (&arm.manifest, "linux/arm64/v8"),
    ]);
    b.write_index_json(&[(&index, "multi")]);
    MultiLayout { b, amd, arm, index }
}

/// The names in `dir` that start with `.`: the temporary files and directories a write may
/// have left behind (in `read_dir` order).
pub fn hidden_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// A deterministic tar of a directory tree (sorted, fixed owners and times).
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut paths = Vec::new();
    collect(dir, dir, &mut paths);
    paths.sort();
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    for rel in paths {
        let full = dir.join(&rel);
        let meta = fs::metadata(&full).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, format!("{}/", rel.display()), io::empty())
                .unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(meta.len());
            b.append_data(&mut h, &rel, fs::File::open(&full).unwrap())
                .unwrap();
        }
    }
    b.finish().unwrap();
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.strip_prefix(root).unwrap().to_path_buf());
        if p.is_dir() {
            collect(root, &p, out);
        }
    }
}

/// Reads layer `i` uncompressed, to EOF.
pub fn read_layer(image: &Image, i: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    image
        .open_layer(i)
        .expect("open_layer")
        .read_to_end(&mut out)?;
    Ok(out)
}

/// `sha256sum FILE`, an independent second computation of a digest.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (apt coreutils) must be installed");
    assert!(out.status.success());
    format!(
        "sha256:{}",
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// Fails (never skips) when a test's external program is missing, naming the apt package.
pub fn require_tool(program: &str, apt_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{program}`: apt-get install -y {apt_package}"
    );
}

pub fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- a tiny, bounded HTTP/1.1 server (one request per connection) ----

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves on `ip`:(free port) until dropped, or for 60 s at most.
    pub fn start(ip: &str, handler: impl Fn(&Request) -> Response + Send + 'static) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        if let Some(req) = read_request(&stream) {
                            log2.lock().unwrap().push(req.clone());
                            let resp = handler(&req);
                            let _ = write_response(&stream, resp);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        TestServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.take(64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Some(Request { path, headers })
}

fn write_response(mut stream: &std::net::TcpStream, resp: Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&resp.body)?;
    stream.flush()
}
