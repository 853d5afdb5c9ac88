//! Fuzz target: see [`icos_fuzz_harness::gpt`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::gpt(data));
}
