"""Source-controlled build settings of the default image: the build's clock and seed live here, nowhere else."""

# The build's only clock: every timestamp in every artifact is at most this (2025-11-25T00:00:00Z).
# Bump it deliberately with a release; two builds of the same commit always agree on it.
SOURCE_DATE_EPOCH = 1764028800

# Every UUID, volume id and GUID of the default image derives from this seed (ARCHITECTURE.md, "Seeds").
SEED = "icos-default-v1"

# The default image's version (IMAGE_VERSION): what systemd-boot sorts by and a node compares before
# it accepts an upgrade. Raise it with every release.
VERSION = "1"

# The default image's os-release fields; icos_image adds IMAGE_ID and IMAGE_VERSION.
OS_RELEASE = {
    "HOME_URL": "https://icos.invalid/",
    "ID": "icos",
    "NAME": "icos",
    "PRETTY_NAME": "icos default image",
}

# The pinned base: ic-os/base/layout, made by scripts/make-base.py from busybox-static 1:1.35.0-4+deb12u1+b1.
BASE_DIGEST = "sha256:a65d5277d1f31697198c67407ccb612403fe1d27c8696083906e908b364ac6ae"

# The kernel: a package pinned in toolchains/debian/packages.bzl, and its ABI (its /boot/vmlinuz-ABI).
KERNEL = struct(
    package = "debian_linux_image",
    abi = "6.1.0-50-amd64",
    # The drivers the initramfs loads to reach the root partition (boot/init loads them in order).
    modules = [
        "kernel/crypto/crc32c_generic.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/fs/ext4/ext4.ko",
        "kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/mbcache.ko",
        "kernel/lib/crc16.ko",
        # dm-verity for the verified root, and what it needs.
        "kernel/drivers/md/dm-bufio.ko",
        "kernel/drivers/md/dm-mod.ko",
        "kernel/drivers/md/dm-verity.ko",
        "kernel/lib/reed_solomon/reed_solomon.ko",
    ],
)
