//! Spec sources staged the way Bazel's sandbox stages inputs. Its own test binary: it changes the
//! working directory, as Bazel runs an action in its execroot.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use icos_rootfs::{ImageSpec, RootfsBuilder};

fn build(spec: &Path, roots: &[PathBuf]) -> Result<Vec<u8>, String> {
    let out = tempfile::tempdir().unwrap();
    let spec = ImageSpec::load(spec, roots).map_err(|e| e.to_string())?;
    let mut builder = RootfsBuilder::new(out.path(), EPOCH.to_string().parse().unwrap()).unwrap();
    builder.apply_spec(&spec).map_err(|e| e.to_string())?;
    let tar = out.path().join("rootfs.tar");
    builder
        .write(&tar, &out.path().join("m.json"), None)
        .map_err(|e| e.to_string())?;
    Ok(std::fs::read(tar).unwrap())
}

#[test]
fn staged_links_resolve_into_the_workspace_and_bazel_out_but_no_further() {
    let top = tempfile::tempdir().unwrap();
    let t = top.path().canonicalize().unwrap();
    // The workspace: a spec, a source, and a checked-in link to a host file.
    let ws = t.join("checkout");
    std::fs::create_dir_all(ws.join("ic-os/files")).unwrap();
    std::fs::write(ws.join("ic-os/files/motd"), b"hi\n").unwrap();
    symlink("/etc/passwd", ws.join("ic-os/files/evil")).unwrap();
    // The real execroot: top-level links into the workspace, bazel-out real.
    let exec = t.join("ob/execroot/icos");
    std::fs::create_dir_all(exec.join("bazel-out/bin/ic-os")).unwrap();
    std::fs::write(exec.join("bazel-out/bin/ic-os/os-release"), b"ID=icos\n").unwrap();
    symlink(ws.join("ic-os"), exec.join("ic-os")).unwrap();
    // The sandbox: real directories, one link per declared input into the real execroot.
    let sandbox = t.join("ob/sandbox/linux-sandbox/7/execroot/icos");
    for rel in [
        "ic-os/image.toml",
        "ic-os/files/motd",
        "ic-os/files/evil",
        "bazel-out/bin/ic-os/os-release",
    ] {
        let staged = sandbox.join(rel);
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        symlink(exec.join(rel), staged).unwrap();
    }
    std::fs::write(
        ws.join("ic-os/image.toml"),
        "[[file]]\npath = \"/motd\"\nsource = \"files/motd\"\n[[file]]\npath = \"/etc/os-release\"\nsource = \"os-release\"\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("ic-os/evil.toml"),
        "[[file]]\npath = \"/x\"\nsource = \"files/evil\"\n",
    )
    .unwrap();
    symlink(
        exec.join("ic-os/evil.toml"),
        sandbox.join("ic-os/evil.toml"),
    )
    .unwrap();
    let roots = [PathBuf::from("ic-os"), PathBuf::from("bazel-out/bin/ic-os")];

    // Sandboxed and unsandboxed (the real execroot) actions alike.
    for cwd in [&sandbox, &exec] {
        std::env::set_current_dir(cwd).unwrap();
        let tar = build(Path::new("ic-os/image.toml"), &roots)
            .unwrap_or_else(|e| panic!("in {}: {e}", cwd.display()));
        assert_eq!(names(&tar), ["./", "./etc/", "./etc/os-release", "./motd"]);
        let err = build(Path::new("ic-os/evil.toml"), &roots).unwrap_err();
        assert!(
            err.contains("source \"files/evil\": ic-os/files/evil resolves to /etc/passwd, outside the source roots (ic-os, bazel-out/bin/ic-os)"),
            "in {}: {err}",
            cwd.display()
        );
    }
}
