//! Fuzz target: see [`icos_fuzz::oci_layout`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::oci_layout(data));
}
