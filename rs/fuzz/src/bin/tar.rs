//! Fuzz target: see [`icos_fuzz::tar`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::tar(data));
}
