//! Fuzz target: see [`icos_fuzz::sha256sums`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::sha256sums(data));
}
