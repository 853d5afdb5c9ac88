//! Fuzz target: see [`icos_fuzz::ext4`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::ext4(data));
}
