"""Pinned Debian packages the default image is made of. Refresh with scripts/update-pins.sh.

Each pin is package name, exact version, the file's path on the mirror and its sha256. Bazel
downloads the file once into its repository cache (keyed by sha256) and verifies it; icos-deb
verifies it again before reading it. Nothing here is ever fetched unverified.
"""

DEBIAN_MIRRORS = [
    "http://deb.debian.org/debian",
    "http://deb.debian.org/debian-security",
]

DEBIAN_PACKAGES = {
    "debian_busybox_static": {
        "package": "busybox-static",
        "version": "1:1.35.0-4+deb12u1+b1",
        "path": "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb",
        "sha256": "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
    },
    "debian_linux_image": {
        "package": "linux-image-6.1.0-50-amd64",
        "version": "6.1.176-1",
        "path": "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb",
        "sha256": "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
    },
    "debian_systemd_boot_efi": {
        "package": "systemd-boot-efi",
        "version": "252.39-1~deb12u2",
        "path": "pool/main/s/systemd/systemd-boot-efi_252.39-1~deb12u2_amd64.deb",
        "sha256": "8f2b81bdcfafc466882a0cae460272dbf10d8d97c6a3c1c6ea33038c155a2f5e",
    },
}
