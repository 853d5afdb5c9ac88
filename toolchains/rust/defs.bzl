"""Builds the icos Rust tools from `rs/` in one ordinary Bazel action.

Why an action and not a repository rule: an action's key covers every source file, Cargo.lock, the
vendored crates and the toolchain identity, so changing any Rust source rebuilds the tools (and only
then), and the result is shareable through a disk or remote cache. The action runs cargo offline
against the vendored crates with a private CARGO_HOME inside the sandbox: no network, nothing read
from or written to the user's cargo state.
"""

load("@icos_rust_host//:paths.bzl", "CARGO", "RUSTC")

IcosToolsInfo = provider(
    doc = "The icos command-line tools and the identity of the toolchain that built them.",
    fields = {
        "binaries": "dict: tool name (e.g. 'icos-rootfs') -> executable File",
        "identity": "File: tools-identity.txt (tools version, Cargo.lock sha256, rustc/cargo/cc versions)",
    },
)

_BUILD_SCRIPT = """\
set -euo pipefail
execroot="$PWD"
work="$execroot/_cargo"
mkdir -p "$work/home"
cat > "$work/home/config.toml" <<CONFIG
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "$execroot/{vendor}"
[net]
offline = true
CONFIG
# Paths are remapped so the binaries do not embed the sandbox's location.
export CARGO_HOME="$work/home" RUSTC="{rustc}" CARGO_INCREMENTAL=0 \
  RUSTFLAGS="--remap-path-prefix=$execroot=/icos --remap-path-prefix=$work=/cargo"
"{cargo}" build --quiet --release --locked --offline --manifest-path "{manifest}" \
  --target-dir "$work/target" -p icos-tools --bins
for bin in {bins}; do
  cp "$work/target/release/$bin" "{outdir}/$bin"
done
{{
  echo "icos-tools $(sed -n 's/^version = "\\(.*\\)"/\\1/p' "{workspace_manifest}" | head -n 1)"
  echo "Cargo.lock sha256:$(sha256sum "{lock}" | cut -d' ' -f1)"
  cat "{host_identity}"
}} > "{identity}"
"""

def _icos_rust_tools_impl(ctx):
    outs = {}
    for name in ctx.attr.binaries:
        outs[name] = ctx.actions.declare_file(ctx.attr.name + "/" + name)
    identity = ctx.actions.declare_file(ctx.attr.name + "/tools-identity.txt")
    manifest = ctx.file.workspace_manifest
    vendor_files = ctx.files.vendor
    vendor_dir = vendor_files[0].path.split("/vendor/")[0] + "/vendor"
    first = outs[ctx.attr.binaries[0]]
    ctx.actions.run_shell(
        outputs = list(outs.values()) + [identity],
        inputs = depset(ctx.files.srcs + vendor_files + [ctx.file.host_identity, manifest, ctx.file.cargo_lock]),
        command = _BUILD_SCRIPT.format(
            cargo = CARGO,
            rustc = RUSTC,
            vendor = vendor_dir,
            manifest = manifest.path,
            workspace_manifest = manifest.path,
            lock = ctx.file.cargo_lock.path,
            host_identity = ctx.file.host_identity.path,
            identity = identity.path,
            bins = " ".join(ctx.attr.binaries),
            outdir = first.dirname,
        ),
        mnemonic = "CargoBuild",
        # The fixed PATH of --incompatible_strict_action_env: cc and ar for crates with C parts (zstd).
        use_default_shell_env = True,
        progress_message = "Building the icos Rust tools (cargo build --release, offline)",
    )
    return [
        DefaultInfo(files = depset(list(outs.values()) + [identity])),
        IcosToolsInfo(binaries = outs, identity = identity),
    ]

icos_rust_tools = rule(
    implementation = _icos_rust_tools_impl,
    doc = "Builds the binaries of the `icos-tools` crate with the host toolchain, offline, from vendored crates.",
    attrs = {
        "binaries": attr.string_list(mandatory = True, doc = "Binary names of the icos-tools crate to build and expose."),
        "cargo_lock": attr.label(allow_single_file = True, mandatory = True, doc = "rs/Cargo.lock."),
        "host_identity": attr.label(allow_single_file = True, mandatory = True, doc = "@icos_rust_host//:identity.txt."),
        "srcs": attr.label_list(allow_files = True, mandatory = True, doc = "Every source file of the rs/ workspace."),
        "vendor": attr.label(mandatory = True, doc = "@icos_cargo_vendor//:vendor."),
        "workspace_manifest": attr.label(allow_single_file = True, mandatory = True, doc = "rs/Cargo.toml."),
    },
)
