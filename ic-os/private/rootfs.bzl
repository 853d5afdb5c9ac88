"""icos_rootfs: pinned base + image description -> one normalized rootfs tar and its manifest."""

load(":providers.bzl", "RootfsInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool")

_TRANSPORTS = ["oci", "oci-archive", "docker-archive"]

def _base_location(ctx):
    """The path the --base reference points at: the layout directory or the archive file."""
    files = ctx.files.base
    if ctx.attr.base_transport == "oci":
        for f in files:
            if f.basename == "oci-layout":
                return f.dirname
        fail("base %s has no oci-layout file: an OCI image layout needs one at its root" % ctx.attr.base.label)
    if len(files) != 1:
        fail("base %s must be exactly one archive file for transport %s" % (ctx.attr.base.label, ctx.attr.base_transport))
    return files[0].path

def _icos_rootfs_impl(ctx):
    tar = ctx.outputs.out or ctx.actions.declare_file(ctx.label.name + ".tar")
    manifest = ctx.outputs.manifest_out or ctx.actions.declare_file(ctx.label.name + ".manifest.json")
    args = ctx.actions.args()
    inputs = list(ctx.files.srcs)
    if ctx.attr.base:
        if not ctx.attr.base_digest.startswith("sha256:"):
            fail("base_digest of %s must be sha256:<64 hex>: a base is always pinned by digest" % ctx.label)
        if ctx.attr.base_transport not in _TRANSPORTS:
            fail("base_transport must be one of %s" % _TRANSPORTS)
        args.add("--base", "%s:%s@%s" % (ctx.attr.base_transport, _base_location(ctx), ctx.attr.base_digest))
        args.add("--platform", ctx.attr.platform)
        inputs += ctx.files.base
    if ctx.file.spec:
        args.add("--spec", ctx.file.spec)
        inputs.append(ctx.file.spec)

        # A spec names its sources relative to its own directory; generated sources (layers and
        # files made by other rules) are found under the output tree's twin of this package, then
        # in the directory of each generated file in srcs (e.g. another image's os-release).
        generated = ctx.bin_dir.path + "/" + ctx.label.package
        if ctx.attr.generated_subdir:
            generated += "/" + ctx.attr.generated_subdir
        roots = [ctx.file.spec.dirname, generated]
        for f in ctx.files.srcs:
            if not f.is_source and f.dirname not in roots:
                roots.append(f.dirname)
        args.add_all(roots, before_each = "--source-root")
    args.add("--source-date-epoch", str(ctx.attr.source_date_epoch))
    args.add("--out", tar)
    args.add("--manifest", manifest)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-rootfs"),
        arguments = [args],
        inputs = inputs,
        outputs = [tar, manifest],
        mnemonic = "IcosRootfs",
        progress_message = "Building rootfs %s" % ctx.label,
    )
    return [
        DefaultInfo(files = depset([tar, manifest])),
        RootfsInfo(tar = tar, manifest = manifest, source_date_epoch = ctx.attr.source_date_epoch),
    ]

icos_rootfs = rule(
    implementation = _icos_rootfs_impl,
    doc = """Flattens a pinned base image, applies an image description and writes a normalized rootfs tar.

Runs `icos-rootfs` once. Without `base`, the tar holds only what `spec` declares (used for the ESP).
Outputs `<name>.tar` and `<name>.manifest.json` (or the names given by `out` / `manifest_out`).
""",
    attrs = dict(TOOLS_ATTRS, **{
        "base": attr.label(allow_files = True, doc = "The base image: all files of an OCI image layout (transport `oci`) or one archive file."),
        "base_digest": attr.string(doc = "sha256 digest pinning the base: manifest or index digest (OCI), image ID or manifest digest (docker-archive)."),
        "base_transport": attr.string(default = "oci", doc = "How to read `base`: oci, oci-archive or docker-archive."),
        "generated_subdir": attr.string(doc = "Subdirectory of the package's output directory where generated srcs live (an image variant's own directory)."),
        "manifest_out": attr.output(doc = "The rootfs manifest (default `<name>.manifest.json`)."),
        "out": attr.output(doc = "The rootfs tar (default `<name>.tar`)."),
        "platform": attr.string(default = "linux/amd64", doc = "Platform to pick when base_digest names an index."),
        "source_date_epoch": attr.int(mandatory = True, doc = "Every mtime is clamped to this (seconds since 1970)."),
        "spec": attr.label(allow_single_file = [".toml"], doc = "The image description (image.toml format, README)."),
        "srcs": attr.label_list(allow_files = True, doc = "Files and extra layers the spec names: paths relative to the spec's directory, or, for generated files, their name in this package's output directory (or `generated_subdir`) or in their own."),
    }),
)
