"""How a rule reaches the icos tools: one private attribute, one helper."""

load("//toolchains/rust:defs.bzl", "IcosToolsInfo")

TOOLS_ATTRS = {
    "_tools": attr.label(
        default = "//toolchains/rust:cargo_build",
        providers = [IcosToolsInfo],
        cfg = "exec",
    ),
}

def icos_tool(ctx, name):
    """Returns the executable File of icos tool `name` (e.g. "icos-rootfs")."""
    return ctx.attr._tools[IcosToolsInfo].binaries[name]

def icos_tools_identity(ctx):
    """Returns the File describing the tools' version and toolchain."""
    return ctx.attr._tools[IcosToolsInfo].identity
