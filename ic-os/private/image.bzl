"""icos_image: one readable description of a whole image, expanded into one target per step."""

load(":boot.bzl", "debian_file", "debian_layer", "icos_initramfs")
load(":disk.bzl", "icos_disk")
load(":filesystem.bzl", "icos_ext4", "icos_vfat")
load(":generated.bzl", "icos_copied_file", "icos_generated_file", "icos_tool_file", "os_release_text")
load(":release.bzl", "icos_build_manifest", "icos_package", "icos_sums", "icos_update_manifest")
load(":rootfs.bzl", "icos_rootfs")
load(":uki.bzl", "icos_uki")
load(":verity.bzl", "icos_verity")

# The partitions of a verified image, in disk order (modelled on IC-OS GuestOS's partitions.csv):
# the ESP, a small config partition, two root slots each with its dm-verity hash partition, and the
# writable data partition. Slot B is allocated and left zeroed until an upgrade writes it.
AB_PARTITIONS = ["esp", "config", "root_a", "root_a_verity", "root_b", "root_b_verity", "var"]

def icos_image(
        name,
        base,
        base_digest,
        spec,
        seed,
        source_date_epoch,
        version = "1",
        image_id = "icos",
        os_release = {},
        srcs = [],
        base_transport = "oci",
        platform = "linux/amd64",
        kernel = None,
        initramfs_spec = None,
        initramfs_srcs = [],
        cmdline = "console=ttyS0 panic=-1 quiet",
        verified = True,
        root_size = "auto",
        root_partition_size = "256MiB",
        verity_partition_size = "16MiB",
        config_size = "16MiB",
        var_size = "64MiB",
        esp_size = "64MiB",
        esp_spec = None,
        esp_srcs = [],
        root_type = "linux-root-x86-64",
        verity_type = "linux-root-verity-x86-64",
        release_public_key = None,
        visibility = None,
        tags = None):
    """Declares every step of an image, from pinned base to SHA256SUMS.

    A verified image (the default) boots one unified kernel image (UKI) from the ESP, whose command
    line carries the dm-verity root hash; its initramfs maps the root slot that hash belongs to
    read-only through dm-verity. The disk has the partitions of AB_PARTITIONS. A plain image
    (`verified = False`) boots a kernel and initramfs named by `esp_spec` and mounts an unprotected
    root partition named `root`.

    The release files land in the package's output directory (`bazel-bin/<pkg>/`) for the image
    named `image`, and in `bazel-bin/<pkg>/<name>/` for any other name, so variants never collide:
    disk-img.tar.zst, update-img.tar.zst, build-manifest.json, rootfs.manifest.json, SHA256SUMS.

    Files an image's specs may name besides their own sources (generated per image):
    `os-release` (the image's os-release: `os_release` plus IMAGE_ID and IMAGE_VERSION; also the
    UKI's `.osrel`), `icos-veritysetup` (the static tool that maps the verified root), with
    `release_public_key` `release.pub` (that key) and `icos-upgrade` (the static upgrade tool), and, with
    `kernel`, the layers `busybox.tar` and `modules.tar` (initramfs) and, for a plain image's ESP,
    `systemd-boot.tar`, `kernel.tar` and `initrd.img`.

    Args:
      name: target name; `bazel build :<name>` builds the release files.
      base: the base image files (all files of an OCI layout, or one archive).
      base_digest: `sha256:…` pinning the base (see icos_rootfs).
      spec: the root filesystem's image.toml.
      seed: seed of every UUID, volume id, GUID and verity salt in the image.
      source_date_epoch: the build's only clock (seconds since 1970).
      version: the image version (dotted numbers, e.g. "1" or "2.3"): IMAGE_VERSION in os-release,
        systemd-boot's sort order, and what a node compares before it accepts an upgrade.
      image_id: IMAGE_ID in os-release and the UKI's file name, `/EFI/Linux/<image_id>_<version>.efi`.
      os_release: os-release fields (NAME, ID, PRETTY_NAME, …), without IMAGE_ID and IMAGE_VERSION.
      srcs: files and extra layers `spec` names.
      base_transport: oci, oci-archive or docker-archive.
      platform: platform picked when base_digest names an index.
      kernel: struct(package, abi, modules) naming a kernel pinned in toolchains/debian/packages.bzl
        (see ic-os/config.bzl); `modules` are the initramfs's drivers.
      initramfs_spec: image.toml describing the initramfs.
      initramfs_srcs: files `initramfs_spec` names.
      cmdline: the kernel command line (a verified image's UKI appends roothash=).
      verified: dm-verity root, UKI and A/B slots (True), or a plain single-root image (False).
      root_size: root filesystem size or `auto`.
      root_partition_size: size of each root slot's partition (verified); room for future images.
      verity_partition_size: size of each slot's hash partition (verified; ~1/128 of the root).
      config_size: size of the config partition (verified).
      var_size: size of the writable data partition (verified).
      esp_size: ESP size.
      esp_spec: image.toml of a plain image's ESP (a verified image's ESP is generated).
      esp_srcs: files `esp_spec` names.
      root_type: GPT type of the root partitions.
      verity_type: GPT type of the hash partitions (verified).
      release_public_key: the release's minisign public key, baked into the image (its spec places
        `release.pub`, e.g. at /etc/icos/release.pub) so icos-upgrade accepts only updates whose
        update-manifest.json it signed. A verified image also gets update-manifest.json.
      visibility: visibility of the release filegroup.
      tags: tags of every target (e.g. ["manual"] for an image whose inputs are not always there).
    """
    prefix = "" if name == "image" else name + "/"
    generated_subdir = prefix.rstrip("/")
    if verified and not (kernel and initramfs_spec):
        fail("icos_image %s: a verified image needs kernel and initramfs_spec" % name)

    icos_generated_file(
        name = name + "_os_release",
        tags = tags,
        out = prefix + "os-release",
        content = os_release_text(name, image_id, version, os_release),
        visibility = visibility,
    )
    icos_tool_file(
        name = name + "_veritysetup",
        tags = tags,
        binary = "icos-veritysetup",
        out = prefix + "icos-veritysetup",
        visibility = visibility,
    )
    generated_srcs = [":" + name + "_os_release", ":" + name + "_veritysetup"]
    if release_public_key:
        icos_copied_file(
            name = name + "_release_pub",
            src = release_public_key,
            out = prefix + "release.pub",
            visibility = visibility,
            tags = tags,
        )
        icos_tool_file(
            name = name + "_upgrade",
            binary = "icos-upgrade",
            out = prefix + "icos-upgrade",
                visibility = visibility,
            tags = tags,
        )
        generated_srcs += [":" + name + "_release_pub", ":" + name + "_upgrade"]

    debian_packages = []
    if kernel:
        debian_packages = sorted(["debian_busybox_static", "debian_systemd_boot_efi", kernel.package])
        _boot_pieces(name, prefix, kernel, tags)
        icos_rootfs(
            name = name + "_initramfs_tree",
            tags = tags,
            spec = initramfs_spec,
            srcs = initramfs_srcs + generated_srcs + [":" + name + "_busybox_layer", ":" + name + "_modules_layer"],
            generated_subdir = generated_subdir,
            source_date_epoch = source_date_epoch,
        )
        icos_initramfs(
            name = name + "_initramfs",
            tags = tags,
            tree = ":" + name + "_initramfs_tree",
            out = prefix + "initrd.img",
        )

    icos_rootfs(
        name = name + "_rootfs",
        tags = tags,
        base = base,
        base_digest = base_digest,
        base_transport = base_transport,
        platform = platform,
        spec = spec,
        srcs = srcs + generated_srcs,
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
        manifest_out = prefix + "rootfs.manifest.json",
    )
    icos_ext4(
        name = name + "_root",
        tags = tags,
        rootfs = ":" + name + "_rootfs",
        seed = seed,
        image_size = root_size,
        fs_label = "root",
    )

    if verified:
        update_srcs, update_names = _verified_disk(
            name,
            prefix,
            kernel,
            generated_subdir,
            seed,
            source_date_epoch,
            version,
            image_id,
            cmdline,
            esp_size,
            config_size,
            root_partition_size,
            verity_partition_size,
            var_size,
            root_type,
            verity_type,
            tags,
        )
    else:
        update_srcs, update_names = _plain_disk(
            name,
            generated_subdir,
            seed,
            source_date_epoch,
            kernel,
            esp_spec,
            esp_srcs,
            esp_size,
            root_size,
            root_type,
            tags,
        )

    icos_package(
        name = name + "_disk_img",
        tags = tags,
        srcs = [":" + name + "_disk"],
        names = ["disk.img"],
        out = prefix + "disk-img.tar.zst",
        source_date_epoch = source_date_epoch,
    )
    icos_package(
        name = name + "_update_img",
        tags = tags,
        srcs = update_srcs,
        names = update_names,
        out = prefix + "update-img.tar.zst",
        source_date_epoch = source_date_epoch,
    )
    artifacts = [":" + name + "_disk_img", ":" + name + "_update_img"]
    if verified:
        # What a node checks the update package against; scripts/release.sh signs it.
        icos_update_manifest(
            name = name + "_update_manifest",
            package = ":" + name + "_update_img",
            uki = ":" + name + "_uki",
            verity = ":" + name + "_root_verity",
            image_id = image_id,
            version = version,
            out = prefix + "update-manifest.json",
            visibility = visibility,
            tags = tags,
        )
        artifacts.append(":" + name + "_update_manifest")
    icos_build_manifest(
        name = name + "_build_manifest",
        tags = tags,
        image_name = name,
        rootfs = ":" + name + "_rootfs",
        disk = ":" + name + "_disk",
        seed = seed,
        artifacts = artifacts,
        debian_packages = debian_packages,
        out = prefix + "build-manifest.json",
    )
    release = artifacts + [
        ":" + name + "_build_manifest",
        ":" + prefix + "rootfs.manifest.json",
    ]
    icos_sums(
        name = name + "_sums",
        tags = tags,
        srcs = release,
        out = prefix + "SHA256SUMS",
    )
    native.filegroup(
        name = name,
        tags = tags,
        srcs = release + [":" + name + "_sums"],
        visibility = visibility,
    )

def _boot_pieces(name, prefix, kernel, tags):
    """The pinned packages' members every bootable image takes: boot loader, kernel, busybox, drivers."""
    debian_layer(
        name = name + "_bootloader_layer",
        tags = tags,
        package = "debian_systemd_boot_efi",
        include = ["/usr/lib/systemd/boot/efi/systemd-bootx64.efi"],
        renames = {"/usr/lib/systemd/boot/efi/systemd-bootx64.efi": "/EFI/BOOT/BOOTX64.EFI"},
        out = prefix + "systemd-boot.tar",
    )
    debian_layer(
        name = name + "_modules_layer",
        tags = tags,
        package = kernel.package,
        include = ["/lib/modules/%s/%s" % (kernel.abi, m) for m in kernel.modules],
        out = prefix + "modules.tar",
    )
    debian_layer(
        name = name + "_busybox_layer",
        tags = tags,
        package = "debian_busybox_static",
        include = ["/bin/busybox"],
        out = prefix + "busybox.tar",
    )

def _verified_disk(
        name,
        prefix,
        kernel,
        generated_subdir,
        seed,
        source_date_epoch,
        version,
        image_id,
        cmdline,
        esp_size,
        config_size,
        root_partition_size,
        verity_partition_size,
        var_size,
        root_type,
        verity_type,
        tags):
    """dm-verity tree, UKI, generated ESP, empty config and var filesystems, the A/B disk.

    Returns the update package's sources and member names.
    """
    icos_verity(
        name = name + "_root_verity",
        tags = tags,
        filesystem = ":" + name + "_root",
        seed = seed,
        verity_label = "root",
    )
    debian_file(
        name = name + "_kernel",
        tags = tags,
        package = kernel.package,
        member = "/boot/vmlinuz-" + kernel.abi,
        out = prefix + "vmlinuz",
    )
    debian_file(
        name = name + "_stub",
        tags = tags,
        package = "debian_systemd_boot_efi",
        member = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
        out = prefix + "linuxx64.efi.stub",
    )
    uki = "%s_%s.efi" % (image_id, version)
    icos_uki(
        name = name + "_uki",
        tags = tags,
        stub = ":" + name + "_stub",
        linux = ":" + name + "_kernel",
        initrd = ":" + name + "_initramfs",
        os_release = ":" + name + "_os_release",
        cmdline = cmdline,
        verity = ":" + name + "_root_verity",
        out = prefix + uki,
    )

    # The ESP holds nothing but what boots: systemd-boot, its loader.conf and the UKI, found by
    # systemd-boot as a Type #2 entry. `editor no`: without Secure Boot the menu's editor could
    # change roothash=.
    icos_generated_file(
        name = name + "_loader_conf",
        tags = tags,
        out = prefix + "loader.conf",
        content = "timeout 0\neditor no\n",
    )
    icos_generated_file(
        name = name + "_esp_spec",
        tags = tags,
        out = prefix + "esp.toml",
        content = "\n".join([
            "# Generated by icos_image %s: the verified image's ESP." % name,
            "",
            "[[layer]]",
            'source = "systemd-boot.tar"',
            "",
            "[[file]]",
            'path = "/loader/loader.conf"',
            'source = "loader.conf"',
            "",
            "[[file]]",
            'path = "/EFI/Linux/%s"' % uki,
            'source = "%s"' % uki,
            "",
        ]),
    )
    icos_rootfs(
        name = name + "_esp_tree",
        tags = tags,
        spec = ":" + name + "_esp_spec",
        srcs = [":" + name + "_bootloader_layer", ":" + name + "_loader_conf", ":" + name + "_uki"],
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
    )
    icos_vfat(
        name = name + "_esp",
        tags = tags,
        rootfs = ":" + name + "_esp_tree",
        seed = seed,
        image_size = esp_size,
        fs_label = "ESP",
    )

    # Config and var start empty: the node writes them.
    icos_generated_file(
        name = name + "_empty_spec",
        tags = tags,
        out = prefix + "empty.toml",
        content = "# Generated by icos_image %s: an empty tree (the config and var partitions start empty).\n" % name,
    )
    icos_rootfs(
        name = name + "_empty_tree",
        tags = tags,
        spec = ":" + name + "_empty_spec",
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
    )
    for part, size in [("config", config_size), ("var", var_size)]:
        icos_ext4(
            name = name + "_" + part,
            tags = tags,
            rootfs = ":" + name + "_empty_tree",
            seed = seed,
            image_size = size,
            fs_label = part,
        )

    icos_disk(
        name = name + "_disk",
        tags = tags,
        partition_names = AB_PARTITIONS,
        partition_types = ["esp", "linux-generic", root_type, verity_type, root_type, verity_type, "linux-var"],
        partition_sizes = [esp_size, config_size, root_partition_size, verity_partition_size, root_partition_size, verity_partition_size, var_size],
        images = {
            ":" + name + "_esp": "esp",
            ":" + name + "_config": "config",
            ":" + name + "_root": "root_a",
            ":" + name + "_root_verity": "root_a_verity",
            ":" + name + "_var": "var",
        },
        seed = seed,
    )
    return (
        [":" + name + "_uki", ":" + name + "_root", ":" + name + "_root_verity"],
        ["uki.efi", "root.img", "root.verity"],
    )

def _plain_disk(
        name,
        generated_subdir,
        seed,
        source_date_epoch,
        kernel,
        esp_spec,
        esp_srcs,
        esp_size,
        root_size,
        root_type,
        tags):
    """A plain image: the ESP from `esp_spec` (a Type #1 entry, kernel and initrd beside it), one root.

    Returns the update package's sources and member names.
    """
    if not esp_spec:
        fail("icos_image %s: a plain image (verified = False) needs esp_spec" % name)
    esp_generated = []
    if kernel:
        debian_layer(
            name = name + "_kernel_layer",
            tags = tags,
            package = kernel.package,
            include = ["/boot/vmlinuz-" + kernel.abi],
            renames = {"/boot/vmlinuz-" + kernel.abi: "/vmlinuz"},
            out = (name + "/" if name != "image" else "") + "kernel.tar",
        )
        esp_generated = [":" + name + "_bootloader_layer", ":" + name + "_kernel_layer", ":" + name + "_initramfs"]
    icos_rootfs(
        name = name + "_esp_tree",
        tags = tags,
        spec = esp_spec,
        srcs = esp_srcs + esp_generated,
        generated_subdir = generated_subdir,
        source_date_epoch = source_date_epoch,
    )
    icos_vfat(
        name = name + "_esp",
        tags = tags,
        rootfs = ":" + name + "_esp_tree",
        seed = seed,
        image_size = esp_size,
        fs_label = "ESP",
    )
    icos_disk(
        name = name + "_disk",
        tags = tags,
        partition_names = ["esp", "root"],
        partition_types = ["esp", root_type],
        partition_sizes = [esp_size, root_size],
        images = {":" + name + "_esp": "esp", ":" + name + "_root": "root"},
        seed = seed,
    )
    return (
        [":" + name + "_esp", ":" + name + "_root"],
        ["boot.img", "root.img"],
    )
