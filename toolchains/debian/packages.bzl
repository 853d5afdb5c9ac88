"""Pinned Debian packages: what the default image is made of, and the toolchain that builds the tools.

Refresh both with scripts/update-pins.sh.

Each pin is package name, exact version, the file's path on the mirror and its sha256. Bazel
downloads the file once into its repository cache (keyed by sha256) and verifies it; icos-deb
verifies it again before reading it. Nothing here is ever fetched unverified.
"""

# Each archive with the pool paths it serves: security updates live under pool/updates/ of the
# security archive, everything else under pool/ of the main archive. A pin is fetched from the
# first archive whose prefix its path starts with, so no download is tried where it cannot exist.
DEBIAN_MIRRORS = [
    struct(url = "http://deb.debian.org/debian-security", serves = "pool/updates/"),
    struct(url = "http://deb.debian.org/debian", serves = "pool/"),
]

DEBIAN_PACKAGES = {
    "debian_busybox_static": {
        "package": "busybox-static",
        "version": "1:1.35.0-4+deb12u1+b1",
        "path": "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb",
        "sha256": "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
    },
    "debian_linux_image": {
        "package": "linux-image-6.1.0-50-amd64",
        "version": "6.1.176-1",
        "path": "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb",
        "sha256": "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
    },
    "debian_systemd_boot_efi": {
        "package": "systemd-boot-efi",
        "version": "252.39-1~deb12u2",
        "path": "pool/main/s/systemd/systemd-boot-efi_252.39-1~deb12u2_amd64.deb",
        "sha256": "8f2b81bdcfafc466882a0cae460272dbf10d8d97c6a3c1c6ea33038c155a2f5e",
    },
}

# The toolchain of the one action that builds the icos tools (//toolchains/rust:tools): Debian's
# rustc/cargo 1.96 (rustc-web, with its LLVM), gcc 12 and binutils for the C parts (zstd, xz) and
# for linking, and glibc/kernel headers as the sysroot. Everything that turns source into machine
# code or links it is here; the runtime libraries the compiler processes merely load (libc, libcurl
# for cargo, libxml2 for LLVM, ...) come from the Debian 12 host, like bash and coreutils.
TOOLCHAIN_PACKAGES = {
    "toolchain_rustc_web": {
        "package": "rustc-web",
        "version": "1.96.0+dfsg1-1~deb12u2",
        "path": "pool/updates/main/r/rustc-web/rustc-web_1.96.0+dfsg1-1~deb12u2_amd64.deb",
        "sha256": "8fefe1d6377fe4082f5a9d2a47e095e2d20319eaab9754bd2f0275155c9adf90",
    },
    "toolchain_cargo_web": {
        "package": "cargo-web",
        "version": "1.96.0+dfsg1-1~deb12u2",
        "path": "pool/updates/main/r/rustc-web/cargo-web_1.96.0+dfsg1-1~deb12u2_amd64.deb",
        "sha256": "daa5189c56b7e0895f9c89335aae3fc909272f5df332c101c80405695014b149",
    },
    "toolchain_libstd_rust_web_dev": {
        "package": "libstd-rust-web-dev",
        "version": "1.96.0+dfsg1-1~deb12u2",
        "path": "pool/updates/main/r/rustc-web/libstd-rust-web-dev_1.96.0+dfsg1-1~deb12u2_amd64.deb",
        "sha256": "e38dbeaaad673fc63fb47c5140cf34da271ac71c3ecafc828b762c2fb01fe77a",
    },
    "toolchain_libstd_rust_web_1_96": {
        "package": "libstd-rust-web-1.96",
        "version": "1.96.0+dfsg1-1~deb12u2",
        "path": "pool/updates/main/r/rustc-web/libstd-rust-web-1.96_1.96.0+dfsg1-1~deb12u2_amd64.deb",
        "sha256": "3755f30434ae29574c91b0beb86632bee401607b0ac35c3e52810f9a53fae0d1",
    },
    "toolchain_libllvm22": {
        "package": "libllvm22",
        "version": "1:22.1.8-1~deb12u1",
        "path": "pool/updates/main/l/llvm-toolchain-22/libllvm22_22.1.8-1~deb12u1_amd64.deb",
        "sha256": "729ec3e943d320515c2bbdc96acfffd7ce34861e62bd5c42726bf586d644dfe2",
    },
    "toolchain_libz3_4": {
        "package": "libz3-4",
        "version": "4.8.12-3.1",
        "path": "pool/main/z/z3/libz3-4_4.8.12-3.1_amd64.deb",
        "sha256": "6221ca25ad5abcfbe1965801029d85a88b4775320384b4b716de8fab7a4d2f7a",
    },
    "toolchain_libstdc__6": {
        "package": "libstdc++6",
        "version": "12.2.0-14+deb12u1",
        "path": "pool/main/g/gcc-12/libstdc++6_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "5cd3171216d4ab0fc911cfe9c35509bf2dd8f47761c43b7f6a4296701551a24d",
    },
    "toolchain_gcc_12": {
        "package": "gcc-12",
        "version": "12.2.0-14+deb12u1",
        "path": "pool/main/g/gcc-12/gcc-12_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "b46f33cc2ec245e435e043807038cecf4b201ef004800e9dfc1455240360e49d",
    },
    "toolchain_cpp_12": {
        "package": "cpp-12",
        "version": "12.2.0-14+deb12u1",
        "path": "pool/main/g/gcc-12/cpp-12_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "fedbb98e877adde83c983c6071537ea25ac52b277ac6e4637d85025949ca1454",
    },
    "toolchain_libgcc_12_dev": {
        "package": "libgcc-12-dev",
        "version": "12.2.0-14+deb12u1",
        "path": "pool/main/g/gcc-12/libgcc-12-dev_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "d720259380a84f2ffc6fe516eff5cbe9c8a005138e8d6a5748747ba4b3404a82",
    },
    "toolchain_libgcc_s1": {
        "package": "libgcc-s1",
        "version": "12.2.0-14+deb12u1",
        "path": "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7",
    },
    "toolchain_libisl23": {
        "package": "libisl23",
        "version": "0.25-1.1",
        "path": "pool/main/i/isl/libisl23_0.25-1.1_amd64.deb",
        "sha256": "ebff0b2f8b220c74224197523019366e97ee4770d464bebc48e4865114e4da0e",
    },
    "toolchain_libmpc3": {
        "package": "libmpc3",
        "version": "1.3.1-1",
        "path": "pool/main/m/mpclib3/libmpc3_1.3.1-1_amd64.deb",
        "sha256": "d7f79544790e44f9b0c8cb9034a18c58d37f8702a15f32539050718679e52f80",
    },
    "toolchain_libmpfr6": {
        "package": "libmpfr6",
        "version": "4.2.0-1",
        "path": "pool/main/m/mpfr4/libmpfr6_4.2.0-1_amd64.deb",
        "sha256": "37b7a2b4e78890b6a074777f27b96c84f58e81558ba08410c2b6c0ca4a4ad77b",
    },
    "toolchain_libgmp10": {
        "package": "libgmp10",
        "version": "2:6.2.1+dfsg1-1.1",
        "path": "pool/main/g/gmp/libgmp10_6.2.1+dfsg1-1.1_amd64.deb",
        "sha256": "187aedef2ed763f425c1e523753b9719677633c7eede660401739e9c893482bd",
    },
    "toolchain_binutils_x86_64_linux_gnu": {
        "package": "binutils-x86-64-linux-gnu",
        "version": "2.40-2",
        "path": "pool/main/b/binutils/binutils-x86-64-linux-gnu_2.40-2_amd64.deb",
        "sha256": "2d7ea8a570d768224d7f2424abbe6f373d2154865a1fa7f56c80d43ecf492521",
    },
    "toolchain_libbinutils": {
        "package": "libbinutils",
        "version": "2.40-2",
        "path": "pool/main/b/binutils/libbinutils_2.40-2_amd64.deb",
        "sha256": "fcf55b99e5f8a78f3c8ce9b6957f1024f394cf20c196b100d308a57e43547710",
    },
    "toolchain_libctf0": {
        "package": "libctf0",
        "version": "2.40-2",
        "path": "pool/main/b/binutils/libctf0_2.40-2_amd64.deb",
        "sha256": "3fb7b6f326be3fae4a87a3d33b9269bd06c1e4346a24bd737f265067e3b7427f",
    },
    "toolchain_libctf_nobfd0": {
        "package": "libctf-nobfd0",
        "version": "2.40-2",
        "path": "pool/main/b/binutils/libctf-nobfd0_2.40-2_amd64.deb",
        "sha256": "ef1dfcf22de41ea90ebd3d505447ccccd999e96b85aa777a1d7d981dc3b347aa",
    },
    "toolchain_libjansson4": {
        "package": "libjansson4",
        "version": "2.14-2",
        "path": "pool/main/j/jansson/libjansson4_2.14-2_amd64.deb",
        "sha256": "3fc9742f9f1a37bcb9931df6074b4d1483419ef832ad5349f47323e75fc27864",
    },
    "toolchain_libc6": {
        "package": "libc6",
        "version": "2.36-9+deb12u14",
        "path": "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb",
        "sha256": "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf",
    },
    "toolchain_libc6_dev": {
        "package": "libc6-dev",
        "version": "2.36-9+deb12u14",
        "path": "pool/main/g/glibc/libc6-dev_2.36-9+deb12u14_amd64.deb",
        "sha256": "0218fc2befcd784c1b0c6292c0a137ce89fad054efaa579ad083bee0f2c01aae",
    },
    "toolchain_linux_libc_dev": {
        "package": "linux-libc-dev",
        "version": "6.1.192-2",
        "path": "pool/updates/main/l/linux/linux-libc-dev_6.1.192-2_amd64.deb",
        "sha256": "e0632f8e55ec0d2d1c56f9c65a8bcb64ad5d79add297266bc89c616dfef9a7fe",
    },
}
