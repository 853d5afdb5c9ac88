//! Fuzz target: see [`icos_fuzz_harness::image_toml`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::image_toml(data));
}
