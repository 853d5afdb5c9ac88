//! Fuzz target: see [`icos_fuzz::image_toml`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::image_toml(data));
}
