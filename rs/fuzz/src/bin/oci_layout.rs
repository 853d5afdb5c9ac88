//! Fuzz target: see [`icos_fuzz_harness::oci_layout`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::oci_layout(data));
}
