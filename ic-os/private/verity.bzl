"""icos_verity: a filesystem image -> its dm-verity hash tree (a partition of its own) and root hash."""

load(":providers.bzl", "FilesystemInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _icos_verity_impl(ctx):
    data = ctx.attr.filesystem[FilesystemInfo]
    hash_image = ctx.actions.declare_file(ctx.label.name + ".verity")
    params = ctx.actions.declare_file(ctx.label.name + ".params.json")
    args = ctx.actions.args()
    args.add("--data", data.image)
    args.add("--out", hash_image)
    args.add("--seed", ctx.attr.seed)
    args.add("--label", ctx.attr.verity_label)
    args.add("--report-out", params)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-verity"),
        arguments = [args],
        inputs = [data.image],
        outputs = [hash_image, params],
        mnemonic = "IcosVerity",
        progress_message = "Hashing %s for dm-verity" % data.image.short_path,
    )
    return [
        DefaultInfo(files = depset([hash_image, params])),
        FilesystemInfo(image = hash_image, params = params, fs_type = "verity", rootfs = data.rootfs),
    ]

icos_verity = rule(
    implementation = _icos_verity_impl,
    doc = """Builds the dm-verity hash device of a filesystem image with `icos-verity`.

Format 1, sha256, 4 KiB blocks, superblock first (what `veritysetup format` writes); salt and UUID
derive from the seed (purposes `verity:salt:<label>`, `verity:uuid:<label>`). Outputs
`<name>.verity` (the hash partition's image) and `<name>.params.json` (schema
`icos.verity-params/v1`, with the root hash), as a FilesystemInfo of fs_type `verity`.
""",
    attrs = dict(TOOLS_ATTRS, **{
        "filesystem": attr.label(mandatory = True, providers = [FilesystemInfo], doc = "The data image to protect (an icos_ext4)."),
        "seed": attr.string(mandatory = True, doc = "Seed the salt and UUID derive from."),
        "verity_label": attr.string(default = "root", doc = "Label in the seed purposes; also recorded in the params."),
    }),
)
