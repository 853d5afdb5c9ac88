"""Release artifacts: packaged images (tar.zst), the build manifest and SHA256SUMS."""

load("//toolchains/debian:packages.bzl", "DEBIAN_PACKAGES")
load(":providers.bzl", "DiskInfo", "FilesystemInfo", "RootfsInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool", "icos_tools_identity")

def _image_file(target):
    """The image a pipeline target stands for: a disk's or a filesystem's image, else its only file."""
    if DiskInfo in target:
        return target[DiskInfo].image
    if FilesystemInfo in target:
        return target[FilesystemInfo].image
    files = target[DefaultInfo].files.to_list()
    if len(files) != 1:
        fail("%s provides %d files; name a single file or an icos_disk/icos_ext4/icos_vfat target" % (target.label, len(files)))
    return files[0]

def _icos_package_impl(ctx):
    srcs = [_image_file(t) for t in ctx.attr.srcs]
    if ctx.attr.names and len(ctx.attr.names) != len(srcs):
        fail("names of %s must be empty or one per entry in srcs" % ctx.label)
    out = ctx.actions.declare_file(ctx.attr.out)
    args = ctx.actions.args()
    args.add("--out", out)
    args.add("--source-date-epoch", str(ctx.attr.source_date_epoch))
    for name in ctx.attr.names:
        args.add("--name", name)
    args.add_all(srcs)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-pack"),
        arguments = [args],
        inputs = srcs,
        outputs = [out],
        mnemonic = "IcosPack",
        progress_message = "Packaging %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_package = rule(
    implementation = _icos_package_impl,
    doc = "Packs files into a deterministic, sparse-aware tar compressed with zstd (`icos-pack`).",
    attrs = dict(TOOLS_ATTRS, **{
        "names": attr.string_list(doc = "Names inside the tar, one per file in srcs (default: base names)."),
        "out": attr.string(mandatory = True, doc = "Output file name, e.g. `disk-img.tar.zst`."),
        "source_date_epoch": attr.int(mandatory = True, doc = "mtime of every tar entry."),
        "srcs": attr.label_list(allow_files = True, mandatory = True, doc = "What to pack, in order: icos_disk / icos_ext4 / icos_vfat targets (their image) or single files."),
    }),
)

def _icos_build_manifest_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    rootfs = ctx.attr.rootfs[RootfsInfo]
    disk = ctx.attr.disk[DiskInfo]
    identity = icos_tools_identity(ctx)
    args = ctx.actions.args()
    args.add("--out", out)
    args.add("--image", ctx.attr.image_name)
    args.add("--source-date-epoch", str(rootfs.source_date_epoch))
    args.add("--seed", ctx.attr.seed)
    args.add("--rootfs-manifest", rootfs.manifest)
    args.add("--disk-report", disk.report)
    args.add("--tools-identity", identity)
    artifacts = [_image_file(t) for t in ctx.attr.artifacts]
    inputs = [rootfs.manifest, disk.report, identity] + artifacts
    for name, fs in sorted(disk.filesystems.items()):
        args.add("--fs-params", "%s=%s" % (name, fs.params.path))
        inputs.append(fs.params)
    for f in artifacts:
        args.add("--artifact", f)
    for name in ctx.attr.debian_packages:
        pin = DEBIAN_PACKAGES[name]
        args.add("--input", "deb:%s@%s=sha256:%s" % (pin["package"], pin["version"], pin["sha256"]))
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-manifest"),
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "IcosManifest",
        progress_message = "Writing build manifest %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_build_manifest = rule(
    implementation = _icos_build_manifest_impl,
    doc = "Writes build-manifest.json: inputs, tool identities, rootfs, partitions and artifact digests (`icos-manifest`).",
    attrs = dict(TOOLS_ATTRS, **{
        "artifacts": attr.label_list(allow_files = True, doc = "Release artifacts whose digests the manifest lists."),
        "debian_packages": attr.string_list(doc = "Pins (toolchains/debian/packages.bzl keys) the image is made of; recorded as inputs."),
        "disk": attr.label(mandatory = True, providers = [DiskInfo], doc = "The icos_disk of the image."),
        "image_name": attr.string(mandatory = True, doc = "The image's name as recorded in the manifest."),
        "out": attr.string(default = "build-manifest.json", doc = "Output file name."),
        "rootfs": attr.label(mandatory = True, providers = [RootfsInfo], doc = "The image's root icos_rootfs."),
        "seed": attr.string(mandatory = True, doc = "The image seed, recorded in the manifest."),
    }),
)

def _icos_sums_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    srcs = [_image_file(t) for t in ctx.attr.srcs]
    for f in srcs:
        if f.dirname != out.dirname:
            fail("%s: %s must sit beside %s so `sha256sum -c` works in that directory" % (ctx.label, f.short_path, out.short_path))
    args = ctx.actions.args()
    args.add("--out", out)
    args.add_all(srcs)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-sums"),
        arguments = [args],
        inputs = srcs,
        outputs = [out],
        mnemonic = "IcosSums",
        progress_message = "Writing %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_sums = rule(
    implementation = _icos_sums_impl,
    doc = "Writes SHA256SUMS (coreutils format, sorted) over release artifacts in the same directory (`icos-sums`).",
    attrs = dict(TOOLS_ATTRS, **{
        "out": attr.string(default = "SHA256SUMS", doc = "Output file name."),
        "srcs": attr.label_list(allow_files = True, mandatory = True, doc = "Artifacts to list; they must sit in the output's directory."),
    }),
)

def _icos_update_manifest_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    package = ctx.file.package
    uki = ctx.file.uki
    params = ctx.attr.verity[FilesystemInfo].params
    args = ctx.actions.args()
    args.add("update-manifest")
    args.add("--package", package)
    args.add("--uki", uki)
    args.add("--verity-params", params)
    args.add("--image-id", ctx.attr.image_id)
    args.add("--version", ctx.attr.version)
    args.add("--out", out)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-sign"),
        arguments = [args],
        inputs = [package, uki, params],
        outputs = [out],
        mnemonic = "IcosUpdateManifest",
        progress_message = "Writing update manifest %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_update_manifest = rule(
    implementation = _icos_update_manifest_impl,
    doc = """Writes update-manifest.json (schema `icos.update-manifest/v1`, `icos-sign update-manifest`):
the update package's size and sha256, each member's, the image id, the version and the new root's
dm-verity root hash. A release signs it; a node's icos-upgrade trusts the package only through it.""",
    attrs = dict(TOOLS_ATTRS, **{
        "image_id": attr.string(mandatory = True, doc = "IMAGE_ID (checked against the UKI's .osrel)."),
        "out": attr.string(default = "update-manifest.json", doc = "Output file name."),
        "package": attr.label(mandatory = True, allow_single_file = True, doc = "The update package (icos_package)."),
        "uki": attr.label(mandatory = True, allow_single_file = True, doc = "The UKI packed as uki.efi."),
        "verity": attr.label(mandatory = True, providers = [FilesystemInfo], doc = "The root's icos_verity (its root hash)."),
        "version": attr.string(mandatory = True, doc = "IMAGE_VERSION (checked against the UKI's .osrel)."),
    }),
)
