//! Fuzz target: see [`icos_fuzz_harness::ext4`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::ext4(data));
}
