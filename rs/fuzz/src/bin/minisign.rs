//! Fuzz target: see [`icos_fuzz::minisign`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::minisign(data));
}
