"""icos_ext4 and icos_vfat: a rootfs tar -> a filesystem image, ids from the seed, times from SOURCE_DATE_EPOCH."""

load(":providers.bzl", "FilesystemInfo", "RootfsInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _filesystem_impl(ctx, fs_type, tool, tree_flag, extension):
    rootfs = ctx.attr.rootfs[RootfsInfo]
    image = ctx.actions.declare_file(ctx.label.name + extension)
    params = ctx.actions.declare_file(ctx.label.name + ".params.json")
    args = ctx.actions.args()
    args.add(tree_flag, rootfs.tar)
    args.add("--out", image)
    args.add("--seed", ctx.attr.seed)
    args.add("--source-date-epoch", str(rootfs.source_date_epoch))
    args.add("--size", ctx.attr.image_size)
    args.add("--label", ctx.attr.fs_label)
    args.add("--params-out", params)
    ctx.actions.run(
        executable = icos_tool(ctx, tool),
        arguments = [args],
        inputs = [rootfs.tar],
        outputs = [image, params],
        mnemonic = "Icos" + fs_type.capitalize(),
        progress_message = "Writing %s image %s" % (fs_type, ctx.label),
    )
    return [
        DefaultInfo(files = depset([image, params])),
        FilesystemInfo(image = image, params = params, fs_type = fs_type, rootfs = rootfs),
    ]

def _common_attrs(default_label, default_size, size_doc):
    return dict(TOOLS_ATTRS, **{
        "fs_label": attr.string(default = default_label, doc = "Filesystem label; also part of the seed purpose of its ids."),
        "rootfs": attr.label(mandatory = True, providers = [RootfsInfo], doc = "The icos_rootfs whose tar fills the filesystem."),
        "seed": attr.string(mandatory = True, doc = "Seed the filesystem UUID / volume id (and hash seed) derive from."),
        "image_size": attr.string(default = default_size, doc = size_doc),
    })

def _icos_ext4_impl(ctx):
    return _filesystem_impl(ctx, "ext4", "icos-ext4", "--rootfs", ".ext4")

icos_ext4 = rule(
    implementation = _icos_ext4_impl,
    doc = "Writes an ext4 image from a rootfs tar with `icos-ext4` (no mke2fs, no root). Outputs `<name>.ext4` and `<name>.params.json`.",
    attrs = _common_attrs("root", "auto", "Image size (`512MiB`) or `auto`: content plus documented headroom."),
)

def _icos_vfat_impl(ctx):
    return _filesystem_impl(ctx, "vfat", "icos-vfat", "--tree", ".vfat")

icos_vfat = rule(
    implementation = _icos_vfat_impl,
    doc = "Writes a FAT32 image (the ESP) from a rootfs tar with `icos-vfat`. Outputs `<name>.vfat` and `<name>.params.json`.",
    attrs = _common_attrs("ESP", "64MiB", "Image size, e.g. `64MiB` (FAT32 needs at least about 33 MiB)."),
)
