"""icos_test_signed: a file and its minisign signature, made with a (test) secret key by icos-sign.

The release step of scripts/release.sh for one file, inside the build, so a test can deliver a
signed update without building the tools a second time in the target configuration."""

load("//ic-os/private:tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _icos_test_signed_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.name + "/" + ctx.file.src.basename)
    sig = ctx.actions.declare_file(ctx.attr.name + "/" + ctx.file.src.basename + ".minisig")
    ctx.actions.run_shell(
        command = 'cp "$2" "$3" && "$1" sign --secret-key "$4" "$3" >/dev/null',
        arguments = [icos_tool(ctx, "icos-sign").path, ctx.file.src.path, out.path, ctx.file.secret_key.path],
        inputs = [ctx.file.src, ctx.file.secret_key],
        tools = [icos_tool(ctx, "icos-sign")],
        outputs = [out, sig],
        mnemonic = "IcosTestSign",
        progress_message = "Signing %s with a test key" % ctx.file.src.short_path,
    )
    return [DefaultInfo(files = depset([out, sig]), runfiles = ctx.runfiles(files = [out, sig]))]

icos_test_signed = rule(
    implementation = _icos_test_signed_impl,
    doc = "Copies `src` to `<name>/` and signs it there with `secret_key` (`<name>/<file>.minisig`).",
    attrs = dict(TOOLS_ATTRS, **{
        "secret_key": attr.label(mandatory = True, allow_single_file = True, doc = "An unencrypted minisign secret key (test only)."),
        "src": attr.label(mandatory = True, allow_single_file = True, doc = "The file to sign."),
    }),
)
