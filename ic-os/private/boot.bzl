"""Boot pieces from pinned Debian packages: package members as tar layers, and the initramfs."""

load("//toolchains/debian:packages.bzl", "DEBIAN_PACKAGES")
load(":providers.bzl", "RootfsInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _icos_deb_layer_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".tar")
    args = ctx.actions.args()
    args.add("--deb", ctx.file.deb)
    args.add("--sha256", ctx.attr.sha256)
    args.add_all(ctx.attr.include, before_each = "--include")
    for src, dest in sorted(ctx.attr.renames.items()):
        args.add("--rename", "%s=%s" % (src, dest))
    args.add("--out", out)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-deb"),
        arguments = [args],
        inputs = [ctx.file.deb],
        outputs = [out],
        mnemonic = "IcosDebLayer",
        progress_message = "Taking %s from %s" % (out.short_path, ctx.file.deb.owner.workspace_name),
    )
    return [DefaultInfo(files = depset([out]))]

icos_deb_layer = rule(
    implementation = _icos_deb_layer_impl,
    doc = "Copies selected members of a pinned .deb into a tar layer (`icos-deb`); every pattern and rename must match.",
    attrs = dict(TOOLS_ATTRS, **{
        "deb": attr.label(allow_single_file = [".deb"], mandatory = True, doc = "The package, e.g. @debian_linux_image//:package.deb."),
        "include": attr.string_list(doc = "Globs over absolute member paths to keep (default: all)."),
        "out": attr.string(doc = "Output file name (default `<name>.tar`)."),
        "renames": attr.string_dict(doc = "Absolute member path -> absolute path in the layer."),
        "sha256": attr.string(mandatory = True, doc = "The package's pinned sha256 (sha256:<hex>), checked before reading."),
    }),
)

def _icos_deb_file_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    args = ctx.actions.args()
    args.add("--deb", ctx.file.deb)
    args.add("--sha256", ctx.attr.sha256)
    args.add("--extract", ctx.attr.member)
    args.add("--out", out)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-deb"),
        arguments = [args],
        inputs = [ctx.file.deb],
        outputs = [out],
        mnemonic = "IcosDebFile",
        progress_message = "Taking %s from %s" % (out.short_path, ctx.file.deb.owner.workspace_name),
    )
    return [DefaultInfo(files = depset([out]))]

icos_deb_file = rule(
    implementation = _icos_deb_file_impl,
    doc = "Copies one regular-file member of a pinned .deb to a file (`icos-deb --extract`).",
    attrs = dict(TOOLS_ATTRS, **{
        "deb": attr.label(allow_single_file = [".deb"], mandatory = True, doc = "The package."),
        "member": attr.string(mandatory = True, doc = "Absolute path of the member, e.g. /boot/vmlinuz-6.1.0-50-amd64."),
        "out": attr.string(mandatory = True, doc = "Output file name."),
        "sha256": attr.string(mandatory = True, doc = "The package's pinned sha256 (sha256:<hex>), checked before reading."),
    }),
)

def debian_file(name, package, **kwargs):
    """icos_deb_file for a package pinned in toolchains/debian/packages.bzl."""
    pin = DEBIAN_PACKAGES[package]
    icos_deb_file(
        name = name,
        deb = "@%s//:package.deb" % package,
        sha256 = "sha256:" + pin["sha256"],
        **kwargs
    )

def debian_layer(name, package, **kwargs):
    """icos_deb_layer for a package pinned in toolchains/debian/packages.bzl, e.g. package = "debian_linux_image"."""
    pin = DEBIAN_PACKAGES[package]
    icos_deb_layer(
        name = name,
        deb = "@%s//:package.deb" % package,
        sha256 = "sha256:" + pin["sha256"],
        **kwargs
    )

def _icos_initramfs_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".img")
    tree = ctx.attr.tree[RootfsInfo]
    args = ctx.actions.args()
    args.add("--tree", tree.tar)
    args.add("--out", out)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-initramfs"),
        arguments = [args],
        inputs = [tree.tar],
        outputs = [out],
        mnemonic = "IcosInitramfs",
        progress_message = "Writing initramfs %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_initramfs = rule(
    implementation = _icos_initramfs_impl,
    doc = "Writes a reproducible gzip newc initramfs from an icos_rootfs tree (`icos-initramfs`).",
    attrs = dict(TOOLS_ATTRS, **{
        "out": attr.string(doc = "Output file name (default `<name>.img`)."),
        "tree": attr.label(mandatory = True, providers = [RootfsInfo], doc = "The icos_rootfs holding the initramfs content."),
    }),
)
