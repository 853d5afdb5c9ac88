"""icos_uki: kernel + initramfs + os-release + command line -> one unified kernel image (PE)."""

load(":providers.bzl", "FilesystemInfo")
load(":tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _icos_uki_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".efi")
    report = ctx.actions.declare_file(ctx.label.name + ".uki.json")
    args = ctx.actions.args()
    args.add("--stub", ctx.file.stub)
    args.add("--linux", ctx.file.linux)
    args.add("--initrd", ctx.file.initrd)
    args.add("--osrel", ctx.file.os_release)
    args.add("--cmdline", ctx.attr.cmdline)
    inputs = [ctx.file.stub, ctx.file.linux, ctx.file.initrd, ctx.file.os_release]
    if ctx.attr.verity:
        params = ctx.attr.verity[FilesystemInfo].params
        args.add("--cmdline-from-verity", params)
        inputs.append(params)
    args.add("--out", out)
    args.add("--report-out", report)
    ctx.actions.run(
        executable = icos_tool(ctx, "icos-uki"),
        arguments = [args],
        inputs = inputs,
        outputs = [out, report],
        mnemonic = "IcosUki",
        progress_message = "Writing unified kernel image %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]))]

icos_uki = rule(
    implementation = _icos_uki_impl,
    doc = """Writes a unified kernel image with `icos-uki`: the systemd stub plus `.osrel`, `.cmdline`,
`.initrd` and `.linux` sections, every header field fixed. With `verity`, the command line ends in
`roothash=<hex>` read from the hash device's params, so the one file firmware loads names the only
root it may mount. Outputs `<name>.efi` (or `out`) and `<name>.uki.json` (the section report).
""",
    attrs = dict(TOOLS_ATTRS, **{
        "cmdline": attr.string(mandatory = True, doc = "Kernel command line (without roothash=)."),
        "initrd": attr.label(allow_single_file = True, mandatory = True, doc = "The initramfs."),
        "linux": attr.label(allow_single_file = True, mandatory = True, doc = "The kernel (bzImage)."),
        "os_release": attr.label(allow_single_file = True, mandatory = True, doc = "os-release text for `.osrel` (systemd-boot's title, version and sort key)."),
        "out": attr.string(doc = "Output file name (default `<name>.efi`)."),
        "stub": attr.label(allow_single_file = True, mandatory = True, doc = "systemd's linuxx64.efi.stub."),
        "verity": attr.label(providers = [FilesystemInfo], doc = "An icos_verity whose root hash the command line carries."),
    }),
)
