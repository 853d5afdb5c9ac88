#!/usr/bin/env python3
"""Regenerates ic-os/base/layout, the default image's pinned base, from one pinned Debian package.

The layout is committed (about 1 MiB) so the default build needs no registry and survives the
Debian mirror dropping the package version. This script documents exactly how it was made and
rebuilds it bit for bit: fixed mtimes, numeric owners, sorted entries, gzip without name or time.

Usage: scripts/make-base.py [--deb PATH] [--out ic-os/base/layout]
Without --deb it runs `apt-get download` for the pinned version and checks its sha256.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PIN = {
    "package": "busybox-static",
    "version": "1:1.35.0-4+deb12u1+b1",
    "sha256": "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
}
# The base's own clock: every entry of the layers carries this mtime.
EPOCH = 1_700_000_000
APPLETS = ["ash", "cat", "dmesg", "echo", "ls", "mkdir", "mount", "poweroff", "ps", "reboot",
           "sh", "sleep", "sync", "umount", "uname"]
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch_deb(workdir):
    subprocess.run(["apt-get", "download", f"{PIN['package']}={PIN['version']}"], cwd=workdir, check=True)
    debs = [f for f in os.listdir(workdir) if f.endswith(".deb")]
    if len(debs) != 1:
        sys.exit(f"expected one .deb in {workdir}, found {debs}")
    return os.path.join(workdir, debs[0])


def busybox_from_deb(deb):
    data = open(deb, "rb").read()
    if sha256(data) != PIN["sha256"]:
        sys.exit(f"{deb}: sha256 {sha256(data)} is not the pinned {PIN['sha256']} "
                 f"({PIN['package']} {PIN['version']}); update PIN in {__file__} deliberately")
    out = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        binary = t.extractfile("./bin/busybox").read()
        copyright_text = t.extractfile("./usr/share/doc/busybox-static/copyright").read()
    return binary, copyright_text


class Layer:
    def __init__(self):
        self.entries = []

    def add(self, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", xattrs=None,
            dev=(0, 0)):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = EPOCH
        info.linkname = link
        info.devmajor, info.devminor = dev
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("latin-1") for k, v in sorted(xattrs.items())}
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        self.entries.append((info, data))

    def dir(self, name, mode=0o755):
        self.add(name, tarfile.DIRTYPE, mode=mode)

    def tar_bytes(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as t:
            for info, data in sorted(self.entries, key=lambda e: e[0].name):
                t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
        return buf.getvalue()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as z:
        z.write(data)
    return buf.getvalue()


def build_layers(busybox, copyright_text):
    one = Layer()
    for d in ["bin", "dev", "etc", "opt", "opt/app", "proc", "run", "sbin", "sys", "usr", "usr/bin",
              "usr/share", "usr/share/doc", "usr/share/doc/busybox-static", "var", "var/cache",
              "var/cache/apt", "var/log"]:
        one.dir(d)
    one.dir("root", 0o700)
    one.dir("tmp", 0o1777)
    one.add("bin/busybox", data=busybox, mode=0o755)
    for applet in APPLETS:
        one.add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
    one.add("sbin/init", tarfile.SYMTYPE, link="../bin/busybox", mode=0o777)
    one.add("usr/share/doc/busybox-static/copyright", data=copyright_text)
    one.add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    one.add("etc/group", data=b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n")
    one.add("etc/shadow", data=b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", mode=0o640, gid=42)
    one.add("etc/machine-id", data=b"5f1c3a0e9b7d4c2a8e6f0b1d3c5a7e9f\n", mode=0o444)
    one.add("var/log/installer.log", data=b"installed at build time\n")
    one.add("var/cache/apt/pkgcache.bin", data=b"\0" * 64)
    one.add("opt/app/old.txt", data=b"replaced by layer 2's opaque directory\n")
    one.add("dev/console", tarfile.CHRTYPE, mode=0o600, dev=(5, 1))
    one.add("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))

    two = Layer()
    two.dir("opt/app")
    two.add("opt/app/.wh..wh..opq")
    two.add("opt/app/VERSION", data=b"2\n")
    two.add("var/log/.wh.installer.log")
    hello = b"#!/bin/sh\necho hello from the icos base\n"
    two.add("usr/bin/hello", data=hello, mode=0o755)
    two.add("usr/bin/hello-again", tarfile.LNKTYPE, link="usr/bin/hello", mode=0o755)
    two.add("usr/bin/ping-stub", data=b"#!/bin/sh\necho ping\n", mode=0o755, xattrs={"security.capability": CAP_NET_RAW})
    two.add("usr/bin/su-stub", data=b"#!/bin/sh\nid\n", mode=0o4755)
    two.add("run/initctl", tarfile.FIFOTYPE, mode=0o600)
    return [one.tar_bytes(), two.tar_bytes()]


def write_blob(out, data):
    digest = sha256(data)
    path = os.path.join(out, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deb", help="path to the pinned busybox-static .deb (default: apt-get download it)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "ic-os", "base", "layout"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        deb = args.deb or fetch_deb(work)
        busybox, copyright_text = busybox_from_deb(deb)
    layers = build_layers(busybox, copyright_text)

    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    for old in os.listdir(os.path.join(out, "blobs", "sha256")):
        os.remove(os.path.join(out, "blobs", "sha256", old))
    descriptors = []
    for layer in layers:
        d = write_blob(out, gzip_bytes(layer))
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        descriptors.append((d, f"sha256:{sha256(layer)}"))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin:/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in descriptors]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"scripts/make-base.py ({PIN['package']} {PIN['version']})"}],
    }
    canon = lambda obj: json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    config_desc = write_blob(out, canon(config))
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(sorted(config_desc.items())),
        "layers": [dict(sorted(d.items())) for d, _ in descriptors],
    }
    manifest_desc = write_blob(out, canon(manifest))
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": "icos-base"}
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canon(index))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canon({"imageLayoutVersion": "1.0.0"}))
    print(manifest_desc["digest"])


if __name__ == "__main__":
    main()
