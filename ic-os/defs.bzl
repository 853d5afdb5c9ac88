"""Public API of the icos Bazel rules. Implementations live in private/, one concern per file.

    load("//ic-os:defs.bzl", "icos_image")

* icos_image: macro declaring a whole image (rootfs → ext4 + ESP → GPT disk → packages, manifest, sums).
* icos_rootfs, icos_ext4, icos_vfat, icos_disk, icos_package, icos_build_manifest, icos_sums,
  icos_deb_layer (debian_layer for pinned packages), icos_initramfs: one
  rule per pipeline step, each one action calling one tool from //toolchains/rust:tools.
* RootfsInfo, FilesystemInfo, DiskInfo: providers carrying each step's outputs and manifests.
"""

load("//ic-os/private:boot.bzl", _debian_layer = "debian_layer", _icos_deb_layer = "icos_deb_layer", _icos_initramfs = "icos_initramfs")
load("//ic-os/private:disk.bzl", _icos_disk = "icos_disk")
load("//ic-os/private:filesystem.bzl", _icos_ext4 = "icos_ext4", _icos_vfat = "icos_vfat")
load("//ic-os/private:image.bzl", _icos_image = "icos_image")
load("//ic-os/private:providers.bzl", _DiskInfo = "DiskInfo", _FilesystemInfo = "FilesystemInfo", _RootfsInfo = "RootfsInfo")
load(
    "//ic-os/private:release.bzl",
    _icos_build_manifest = "icos_build_manifest",
    _icos_package = "icos_package",
    _icos_sums = "icos_sums",
)
load("//ic-os/private:rootfs.bzl", _icos_rootfs = "icos_rootfs")

DiskInfo = _DiskInfo
FilesystemInfo = _FilesystemInfo
RootfsInfo = _RootfsInfo
debian_layer = _debian_layer
icos_build_manifest = _icos_build_manifest
icos_deb_layer = _icos_deb_layer
icos_disk = _icos_disk
icos_ext4 = _icos_ext4
icos_image = _icos_image
icos_initramfs = _icos_initramfs
icos_package = _icos_package
icos_rootfs = _icos_rootfs
icos_sums = _icos_sums
icos_vfat = _icos_vfat
