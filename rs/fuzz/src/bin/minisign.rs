//! Fuzz target: see [`icos_fuzz_harness::minisign`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::minisign(data));
}
