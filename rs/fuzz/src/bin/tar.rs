//! Fuzz target: see [`icos_fuzz_harness::tar`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::tar(data));
}
