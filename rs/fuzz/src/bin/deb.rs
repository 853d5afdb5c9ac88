//! Fuzz target: see [`icos_fuzz_harness::deb`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::deb(data));
}
