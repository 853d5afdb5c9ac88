"""icos_generated_file: a small text file whose content the image description decides (os-release,
loader.conf, the ESP's spec), written at analysis time, no tool run; and icos_tool_file, a built
binary placed where an image description finds it."""

load("//toolchains/rust:defs.bzl", "IcosToolsInfo")
load(":tools.bzl", "TOOLS_ATTRS")

def _icos_generated_file_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    ctx.actions.write(out, ctx.attr.content)
    return [DefaultInfo(files = depset([out]))]

icos_generated_file = rule(
    implementation = _icos_generated_file_impl,
    doc = "Writes `content` to `out` (a file in the package's output directory).",
    attrs = {
        "content": attr.string(mandatory = True, doc = "The file's text."),
        "out": attr.string(mandatory = True, doc = "Output file name (may include a subdirectory)."),
    },
)

def os_release_text(name, image_id, version, fields):
    """The image's os-release: `fields` (NAME, ID, PRETTY_NAME, …) plus IMAGE_ID and IMAGE_VERSION.

    The same bytes go to /etc/os-release on the root filesystem and into the UKI's `.osrel`, where
    systemd-boot reads its title, sort key (IMAGE_ID) and version (IMAGE_VERSION), and where a node
    reads the version it runs.
    """
    for key in ("IMAGE_ID", "IMAGE_VERSION"):
        if key in fields:
            fail("os_release fields of %s must not set %s: it comes from the image" % (name, key))
    lines = []
    for key, value in sorted(dict(fields, IMAGE_ID = image_id, IMAGE_VERSION = version).items()):
        if '"' in value or "\\" in value or "\n" in value or "$" in value or "`" in value:
            fail("os_release %s=%r: quotes, backslashes, $, ` and newlines are not allowed" % (key, value))
        lines.append('%s="%s"' % (key, value))
    return "\n".join(lines) + "\n"

def _icos_tool_file_impl(ctx):
    tools = ctx.attr._tools[IcosToolsInfo]
    if ctx.attr.binary not in tools.static_binaries:
        fail("%s: %s is not a node tool; the static ones are %s" % (ctx.label, ctx.attr.binary, ", ".join(sorted(tools.static_binaries))))
    src = tools.binaries[ctx.attr.binary]
    out = ctx.actions.declare_file(ctx.attr.out or ctx.attr.binary)
    ctx.actions.run_shell(
        command = 'cp "$1" "$2"',
        arguments = [src.path, out.path],
        inputs = [src],
        outputs = [out],
        mnemonic = "IcosToolFile",
        progress_message = "Copying %s into %s" % (ctx.attr.binary, out.short_path),
    )
    return [DefaultInfo(files = depset([out]))]

icos_tool_file = rule(
    implementation = _icos_tool_file_impl,
    doc = """Copies one static node tool (built by the same cargo action as the build tools) into
this package's output directory, where an image description finds it as a source by its name.""",
    attrs = dict(TOOLS_ATTRS, **{
        "binary": attr.string(mandatory = True, doc = "The binary's name, e.g. icos-veritysetup."),
        "out": attr.string(doc = "Output file name (default: the binary's name)."),
    }),
)

def _icos_copied_file_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out)
    ctx.actions.run_shell(
        command = 'cp "$1" "$2"',
        arguments = [ctx.file.src.path, out.path],
        inputs = [ctx.file.src],
        outputs = [out],
        mnemonic = "IcosCopyFile",
        progress_message = "Copying %s into %s" % (ctx.file.src.short_path, out.short_path),
    )
    return [DefaultInfo(files = depset([out]))]

icos_copied_file = rule(
    implementation = _icos_copied_file_impl,
    doc = """Copies a source file (e.g. the release public key an image bakes in) into this package's
output directory under `out`, where an image description finds it as a source by that name.""",
    attrs = {
        "out": attr.string(mandatory = True, doc = "Output file name (may include a subdirectory)."),
        "src": attr.label(mandatory = True, allow_single_file = True, doc = "The file to copy."),
    },
)
