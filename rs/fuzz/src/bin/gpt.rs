//! Fuzz target: see [`icos_fuzz::gpt`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::gpt(data));
}
