//! Fuzz target: see [`icos_fuzz_harness::sha256sums`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::sha256sums(data));
}
