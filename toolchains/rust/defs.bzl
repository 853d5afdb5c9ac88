"""Builds the icos Rust tools from `rs/` in one ordinary Bazel action.

Why an action and not a repository rule: an action's key covers every source file, Cargo.lock, the
vendored crates and the toolchain identity, so changing any Rust source rebuilds the tools (and only
then), and the result is shareable through a disk or remote cache. The action runs cargo offline
against the vendored crates with a private CARGO_HOME inside the sandbox: no network, nothing read
from or written to the user's cargo state.
"""


IcosToolsInfo = provider(
    doc = "The icos command-line tools and the identity of the toolchain that built them.",
    fields = {
        "binaries": "dict: tool name (e.g. 'icos-rootfs') -> executable File",
        "static_binaries": "list of the names in `binaries` that are linked statically (they run on a node)",
        "identity": "File: tools-identity.txt (tools version, Cargo.lock sha256, toolchain versions and pins, sha256 of every binary)",
    },
)

_BUILD_SCRIPT = """\
set -euo pipefail
execroot="$PWD"
work="$execroot/_cargo"
toolchain="$execroot/{toolchain_bin}"
mkdir -p "$work/home"
cat > "$work/home/config.toml" <<CONFIG
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "$execroot/{vendor}"
[net]
offline = true
CONFIG
# Only the pinned toolchain: its wrappers come first on PATH, so even a build script that runs a bare
# `cc` or `ar` gets the pinned one; the rest of PATH is the shell plumbing (bash, coreutils).
# Paths are remapped so the binaries do not embed the sandbox's location.
export PATH="$toolchain:/usr/bin:/bin" CARGO_HOME="$work/home" CARGO_INCREMENTAL=0 \\
  RUSTC="$toolchain/rustc" CC="$toolchain/cc" AR="$toolchain/ar" \\
  CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$toolchain/cc" \\
  RUSTFLAGS="--remap-path-prefix=$execroot=/icos --remap-path-prefix=$work=/cargo"
# One cargo invocation compiles every dependency once, for the target triple (so RUSTFLAGS reach
# neither build scripts nor proc macros); then each node binary is linked statically: `cargo rustc`
# passes crt-static to that final crate only, reusing the compiled dependencies. (Two builds, one
# per linkage, compiled the same 166 crates twice.)
cargo=("$toolchain/cargo" --quiet --locked --offline)
common=(--release --manifest-path "{manifest}" --target-dir "$work/target" --target x86_64-unknown-linux-gnu)
"${{cargo[@]}}" build "${{common[@]}}" -p {package} --bins
for bin in {static_bins}; do
  "${{cargo[@]}}" rustc "${{common[@]}}" -p {static_package} --bin "$bin" -- -C target-feature=+crt-static
done
for bin in {bins}; do
  cp "$work/target/x86_64-unknown-linux-gnu/release/$bin" "{outdir}/$bin"
done
# The workspace version, read by bash itself: no program beyond bash and coreutils shapes the identity.
version="" version_line='^version = "(.*)"$'
while IFS= read -r line; do
  if [[ "$line" =~ $version_line ]]; then version=${{BASH_REMATCH[1]}}; break; fi
done < "{workspace_manifest}"
{{
  echo "icos-tools $version"
  echo "Cargo.lock sha256:$(sha256sum "{lock}" | cut -d' ' -f1)"
  cat "{toolchain_identity}"
  for bin in {bins}; do
    echo "bin $bin sha256:$(sha256sum "{outdir}/$bin" | cut -d' ' -f1)"
  done
}} > "{identity}"
"""

def _icos_rust_tools_impl(ctx):
    names = ctx.attr.binaries + ctx.attr.static_binaries
    outs = {}
    for name in names:
        outs[name] = ctx.actions.declare_file(ctx.attr.name + "/" + name)
    identity = ctx.actions.declare_file(ctx.attr.name + "/tools-identity.txt")
    manifest = ctx.file.workspace_manifest
    vendor_files = ctx.files.vendor
    vendor_dir = vendor_files[0].path.split("/vendor/")[0] + "/vendor"
    first = outs[names[0]]
    ctx.actions.run_shell(
        outputs = list(outs.values()) + [identity],
        inputs = depset(ctx.files.srcs + vendor_files + ctx.files.toolchain + [ctx.file.toolchain_identity, manifest, ctx.file.cargo_lock]),
        command = _BUILD_SCRIPT.format(
            toolchain_bin = ctx.file.toolchain_identity.dirname + "/bin",
            vendor = vendor_dir,
            manifest = manifest.path,
            workspace_manifest = manifest.path,
            lock = ctx.file.cargo_lock.path,
            toolchain_identity = ctx.file.toolchain_identity.path,
            identity = identity.path,
            bins = " ".join(names),
            static_bins = " ".join(ctx.attr.static_binaries),
            outdir = first.dirname,
            package = ctx.attr.package,
            static_package = ctx.attr.static_package,
        ),
        mnemonic = "CargoBuild",
        progress_message = "Building the icos Rust tools (cargo build --release, offline)",
    )
    return [
        DefaultInfo(files = depset(list(outs.values()) + [identity])),
        IcosToolsInfo(binaries = outs, identity = identity, static_binaries = ctx.attr.static_binaries),
    ]

icos_rust_tools = rule(
    implementation = _icos_rust_tools_impl,
    doc = "Builds the binaries of `rs/` with the pinned toolchain, offline, from vendored crates, in one action.",
    attrs = {
        "binaries": attr.string_list(mandatory = True, doc = "Binary names of `package` to build and expose: the tools build actions run."),
        "cargo_lock": attr.label(allow_single_file = True, mandatory = True, doc = "rs/Cargo.lock."),
        "package": attr.string(default = "icos-tools", doc = "The Cargo package of `binaries`."),
        "srcs": attr.label_list(allow_files = True, mandatory = True, doc = "Every source file of the rs/ workspace."),
        "static_binaries": attr.string_list(doc = "Binary names of `static_package`, linked statically (glibc's crt-static): binaries that run on a node, in its initramfs or root filesystem, with no library beside them."),
        "static_package": attr.string(default = "icos-node-tools", doc = "The Cargo package of `static_binaries`."),
        "toolchain": attr.label(mandatory = True, doc = "@icos_rust_toolchain//:files: the pinned toolchain tree and its wrappers."),
        "toolchain_identity": attr.label(allow_single_file = True, mandatory = True, doc = "@icos_rust_toolchain//:identity.txt."),
        "vendor": attr.label(mandatory = True, doc = "@icos_cargo_vendor//:vendor."),
        "workspace_manifest": attr.label(allow_single_file = True, mandatory = True, doc = "rs/Cargo.toml."),
    },
)

def _icos_tools_view_impl(ctx):
    tools = ctx.attr.tools[IcosToolsInfo]
    outs = []
    for name, binary in sorted(tools.binaries.items()):
        out = ctx.actions.declare_file(ctx.attr.name + "/" + name)
        ctx.actions.symlink(output = out, target_file = binary, is_executable = True)
        outs.append(out)
    identity = ctx.actions.declare_file(ctx.attr.name + "/" + tools.identity.basename)
    ctx.actions.symlink(output = identity, target_file = tools.identity)
    return [
        DefaultInfo(files = depset(outs + [identity])),
        IcosToolsInfo(binaries = dict(zip(sorted(tools.binaries.keys()), outs)), identity = identity, static_binaries = tools.static_binaries),
    ]

icos_tools_view = rule(
    implementation = _icos_tools_view_impl,
    doc = """The tools the build actions run, under a stable path: `bazel-bin/<package>/<name>/icos-*`.

Actions run the tools built in the exec configuration; building the tools target directly would
build them a second time in the target configuration (another cargo build). This rule depends on
them in the exec configuration and only links them into its own output directory.
""",
    attrs = {
        "tools": attr.label(mandatory = True, cfg = "exec", providers = [IcosToolsInfo], doc = "The icos_rust_tools target."),
    },
)
