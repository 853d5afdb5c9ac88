#!/usr/bin/env python3
"""Writes the seed corpora under corpus/TARGET from small inputs made here with stock tools (tar via
Python's tarfile, minisign, dpkg-deb, sfdisk, mke2fs), shaped like the project's own test inputs.
Run once when a target is added; the seeds are checked in (a few KiB each)."""
import hashlib, io, json, os, subprocess, sys, tarfile, tempfile

here = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n----\n"

def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def small_tar(fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name, typ=tarfile.REGTYPE, data=b"", **kw):
            ti = tarfile.TarInfo(name)
            ti.type, ti.size, ti.mtime, ti.mode = typ, len(data), 1700000000, 0o644
            for k, v in kw.items():
                setattr(ti, k, v)
            t.addfile(ti, io.BytesIO(data) if data else None)
        add("etc", tarfile.DIRTYPE, mode=0o755)
        add("etc/hostname", data=b"icos\n")
        add("etc/" + "n" * 120, data=b"long name\n")
        add("bin/sh", tarfile.SYMTYPE, linkname="busybox")
        add("bin/ls", tarfile.LNKTYPE, linkname="etc/hostname")
        if fmt == tarfile.PAX_FORMAT:
            add("usr/bin/ping", data=b"\x7fELF", pax_headers={
                "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\n\x20", "uid": "70000"})
    return buf.getvalue()

pax = small_tar(tarfile.PAX_FORMAT)
put("tar", "pax.tar", pax)
put("tar", "gnu.tar", small_tar(tarfile.GNU_FORMAT))

layer = small_tar(tarfile.USTAR_FORMAT) if False else small_tar(tarfile.GNU_FORMAT)
config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["@D2"]}}'
manifest = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@D1","size":@S1},'
            b'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@D2","size":@S2}]}')
put("oci_layout", "manifest", SEP.join([manifest, config, layer]))
index = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
         b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@D1","size":@S1,'
         b'"platform":{"os":"linux","architecture":"amd64"}}]}')
m2 = manifest.replace(b"@D2", b"@D3").replace(b"@S2", b"@S3").replace(b"@D1", b"@D2").replace(b"@S1", b"@S2")
c2 = config.replace(b"@D2", b"@D3")
put("oci_layout", "index", SEP.join([index, m2, c2, layer]))

dm = b'[{"Config":"doc1","RepoTags":["icos:1"],"Layers":["doc2"]}]'
put("docker_archive", "legacy", SEP.join([dm, config, layer]))

put("image_toml", "full.toml", b'''remove = ["/var/cache/apt/**", "/etc/machine-id"]
[[layer]]
source = "extra.tar.zst"
[[dir]]
path = "/var/lib/app"
mode = "0750"
uid = 10
[[file]]
path = "/etc/hostname"
content = "icos\\n"
[[file]]
path = "/usr/bin/ping"
source = "files/ping"
mode = "4755"
xattrs = { "security.capability" = "0100000200200000000000000000000000000000" }
[[symlink]]
path = "/etc/localtime"
target = "/usr/share/zoneinfo/UTC"
''')

h = hashlib.sha256(b"a\n").hexdigest()
put("sha256sums", "forms", f"# comment\n{h}  a.img\n{h.upper()} *a.img\r\nSHA256 (a.img) = {h}\n\n".encode())

with tempfile.TemporaryDirectory() as tmp:
    run = lambda *a, **kw: subprocess.run(a, cwd=tmp, check=True, capture_output=True, **kw)
    run("minisign", "-G", "-W", "-p", "key.pub", "-s", "key.sec")
    open(os.path.join(tmp, "a.img"), "wb").write(b"hello\n")
    run("minisign", "-S", "-s", "key.sec", "-m", "a.img", "-t", "file:a.img", input=b"")
    r = lambda n: open(os.path.join(tmp, n), "rb").read()
    put("minisign", "signed", SEP.join([r("key.pub"), r("a.img.minisig"), b"hello\n"]))

    pkg = os.path.join(tmp, "pkg")
    os.makedirs(pkg + "/DEBIAN"); os.makedirs(pkg + "/usr/lib/icos")
    open(pkg + "/DEBIAN/control", "w").write(
        "Package: icos-seed\nVersion: 1\nArchitecture: all\nMaintainer: x <x@y>\nDescription: seed\n")
    open(pkg + "/usr/lib/icos/stub", "w").write("stub\n")
    os.symlink("stub", pkg + "/usr/lib/icos/link")
    for z in ["gzip", "xz", "zstd", "none"]:
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        run("dpkg-deb", "--root-owner-group", f"-Z{z}", "--build", "pkg", f"p-{z}.deb", env=env)
        put("deb", f"{z}.deb", r(f"p-{z}.deb"))

    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    run("sfdisk", "-q", "--no-reread", "--no-tell-kernel", "disk.img", input=(
        b"label: gpt\nlabel-id: 0F3A6C1B-6B2D-4B8E-9C1A-1D2E3F405162\nfirst-lba: 34\n"
        b"start=40, size=200, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, "
        b"uuid=11111111-2222-3333-4444-555555555555, name=esp\n"
        b"start=240, size=400, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n"))
    put("gpt", "disk-head", r("disk.img")[:34 * 512])

    tree = os.path.join(tmp, "tree")
    os.makedirs(tree + "/etc/d")
    open(tree + "/etc/hostname", "w").write("icos\n")
    os.symlink("hostname", tree + "/etc/link")
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "32", "-U",
        "11111111-2222-3333-4444-555555555555", "-E", "hash_seed=11111111-2222-3333-4444-555555555555",
        "-d", "tree", "fs.img", "128k", env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    put("ext4", "small.ext4", r("fs.img"))
