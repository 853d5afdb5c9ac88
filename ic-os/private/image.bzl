"""icos_image: one readable description of a whole image, expanded into one target per step."""

load(":boot.bzl", "debian_layer", "icos_initramfs")
load(":disk.bzl", "icos_disk")
load(":filesystem.bzl", "icos_ext4", "icos_vfat")
load(":release.bzl", "icos_build_manifest", "icos_package", "icos_sums")
load(":rootfs.bzl", "icos_rootfs")

def icos_image(
        name,
        base,
        base_digest,
        spec,
        esp_spec,
        seed,
        source_date_epoch,
        srcs = [],
        esp_srcs = [],
        base_transport = "oci",
        platform = "linux/amd64",
        root_size = "auto",
        esp_size = "64MiB",
        root_type = "linux-root-x86-64",
        kernel = None,
        initramfs_spec = None,
        initramfs_srcs = [],
        visibility = None):
    """Declares every step of an image, from pinned base to SHA256SUMS.

    The release files land in the package's output directory (`bazel-bin/<pkg>/`) for the image
    named `image`, and in `bazel-bin/<pkg>/<name>/` for any other name, so variants never collide:
    disk-img.tar.zst, update-img.tar.zst, build-manifest.json, rootfs.manifest.json, SHA256SUMS.

    Args:
      name: target name; `bazel build :<name>` builds the release files.
      base: the base image files (all files of an OCI layout, or one archive).
      base_digest: `sha256:…` pinning the base (see icos_rootfs).
      spec: the root filesystem's image.toml.
      esp_spec: image.toml describing the ESP's files (no base).
      seed: seed of every UUID, volume id and GUID in the image.
      source_date_epoch: the build's only clock (seconds since 1970).
      srcs: files and extra layers `spec` names.
      esp_srcs: files `esp_spec` names.
      base_transport: oci, oci-archive or docker-archive.
      platform: platform picked when base_digest names an index.
      root_size: root filesystem size or `auto`.
      esp_size: ESP size.
      root_type: GPT type of the root partition.
      kernel: struct(package, abi, modules) naming a kernel pinned in toolchains/debian/packages.bzl
        (see ic-os/config.bzl). With it the image boots: the ESP spec may then use the layers
        `systemd-boot.tar` (/EFI/BOOT/BOOTX64.EFI) and `kernel.tar` (/vmlinuz) and the file
        `initrd.img`, built from `initramfs_spec`, which may use `busybox.tar` and `modules.tar`.
      initramfs_spec: image.toml describing the initramfs (with `kernel`).
      initramfs_srcs: files `initramfs_spec` names.
      visibility: visibility of the release filegroup.
    """
    prefix = "" if name == "image" else name + "/"
    generated_subdir = prefix.rstrip("/")
    esp_generated = []
    debian_packages = []
    if kernel:
        debian_packages = sorted(["debian_busybox_static", "debian_systemd_boot_efi", kernel.package])
        debian_layer(
            name = name + "_bootloader_layer",
            package = "debian_systemd_boot_efi",
            include = ["/usr/lib/systemd/boot/efi/systemd-bootx64.efi"],
            renames = {"/usr/lib/systemd/boot/efi/systemd-bootx64.efi": "/EFI/BOOT/BOOTX64.EFI"},
            out = prefix + "systemd-boot.tar",
        )
        debian_layer(
            name = name + "_kernel_layer",
            package = kernel.package,
            include = ["/boot/vmlinuz-" + kernel.abi],
            renames = {"/boot/vmlinuz-" + kernel.abi: "/vmlinuz"},
            out = prefix + "kernel.tar",
        )
        debian_layer(
            name = name + "_modules_layer",
            package = kernel.package,
            include = ["/lib/modules/%s/%s" % (kernel.abi, m) for m in kernel.modules],
            out = prefix + "modules.tar",
        )
        debian_layer(
            name = name + "_busybox_layer",
            package = "debian_busybox_static",
            include = ["/bin/busybox"],
            out = prefix + "busybox.tar",
        )
        icos_rootfs(
            name = name + "_initramfs_tree",
            spec = initramfs_spec,
            srcs = initramfs_srcs + [":" + name + "_busybox_layer", ":" + name + "_modules_layer"],
            generated_subdir = generated_subdir,
            source_date_epoch = source_date_epoch,
        )
        icos_initramfs(
            name = name + "_initramfs",
            tree = ":" + name + "_initramfs_tree",
            out = prefix + "initrd.img",
        )
        esp_generated = [":" + name + "_bootloader_layer", ":" + name + "_kernel_layer", ":" + name + "_initramfs"]

    icos_rootfs(
        name = name + "_rootfs",
        base = base,
        base_digest = base_digest,
        base_transport = base_transport,
        platform = platform,
        spec = spec,
        srcs = srcs,
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
        manifest_out = prefix + "rootfs.manifest.json",
    )
    icos_rootfs(
        name = name + "_esp_tree",
        spec = esp_spec,
        srcs = esp_srcs + esp_generated,
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
    )
    icos_ext4(
        name = name + "_root",
        rootfs = ":" + name + "_rootfs",
        seed = seed,
        image_size = root_size,
        fs_label = "root",
    )
    icos_vfat(
        name = name + "_esp",
        rootfs = ":" + name + "_esp_tree",
        seed = seed,
        image_size = esp_size,
        fs_label = "ESP",
    )
    icos_disk(
        name = name + "_disk",
        partitions = [":" + name + "_esp", ":" + name + "_root"],
        partition_names = ["esp", "root"],
        partition_types = ["esp", root_type],
        partition_sizes = [esp_size, root_size],
        seed = seed,
    )
    icos_package(
        name = name + "_disk_img",
        srcs = [":" + name + "_disk"],
        names = ["disk.img"],
        out = prefix + "disk-img.tar.zst",
        source_date_epoch = source_date_epoch,
    )
    icos_package(
        name = name + "_update_img",
        srcs = [":" + name + "_esp", ":" + name + "_root"],
        names = ["boot.img", "root.img"],
        out = prefix + "update-img.tar.zst",
        source_date_epoch = source_date_epoch,
    )
    icos_build_manifest(
        name = name + "_build_manifest",
        image_name = name,
        rootfs = ":" + name + "_rootfs",
        disk = ":" + name + "_disk",
        seed = seed,
        artifacts = [":" + name + "_disk_img", ":" + name + "_update_img"],
        debian_packages = debian_packages,
        out = prefix + "build-manifest.json",
    )
    release = [
        ":" + name + "_disk_img",
        ":" + name + "_update_img",
        ":" + name + "_build_manifest",
        ":" + prefix + "rootfs.manifest.json",
    ]
    icos_sums(
        name = name + "_sums",
        srcs = release,
        out = prefix + "SHA256SUMS",
    )
    native.filegroup(
        name = name,
        srcs = release + [":" + name + "_sums"],
        visibility = visibility,
    )
