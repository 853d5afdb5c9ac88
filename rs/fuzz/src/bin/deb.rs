//! Fuzz target: see [`icos_fuzz::deb`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::deb(data));
}
