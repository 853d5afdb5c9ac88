"""The Rust toolchain the tools are built with. A different host toolchain fails the build early."""

# `rustc -V` must start with this. To move on: install the new toolchain (rustup toolchain install
# X.Y.Z), change this line, and let the two-builder check confirm the image did not change.
RUST_VERSION = "rustc 1.95.0 "
