"""icos_test_signed: a file and its minisign signature, made with a (test) secret key by icos-sign.

The release step of scripts/release.sh for one file, inside the build, so a test can deliver a
signed update without building the tools a second time in the target configuration. With `edits`,
an update manifest is changed before it is signed: what a hostile or mistaken release would sign
(an older version, sizes its package does not have, another root hash)."""

load("//ic-os/private:tools.bzl", "TOOLS_ATTRS", "icos_tool")

def _icos_test_signed_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.name + "/" + ctx.file.src.basename)
    sig = ctx.actions.declare_file(ctx.attr.name + "/" + ctx.file.src.basename + ".minisig")
    edits = ["%s=%s" % (k, v) for k, v in sorted(ctx.attr.edits.items())]
    copy = 'python3 "$5" "$2" "$3" "${@:6}"' if edits else 'cp "$2" "$3"'
    ctx.actions.run_shell(
        command = copy + ' && "$1" sign --secret-key "$4" "$3" >/dev/null',
        arguments = [icos_tool(ctx, "icos-sign").path, ctx.file.src.path, out.path, ctx.file.secret_key.path, ctx.file._edit.path] + edits,
        inputs = [ctx.file.src, ctx.file.secret_key, ctx.file._edit],
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
        "edits": attr.string_dict(doc = "JSON fields of the (update manifest) `src` to change before signing: a dotted path (`version`, `members.1.size`) to a JSON value (`\"0\"`), or to `+N` to add N to a number."),
        "_edit": attr.label(default = ":edit_manifest.py", allow_single_file = True),
    }),
)
