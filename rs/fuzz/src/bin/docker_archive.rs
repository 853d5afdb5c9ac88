//! Fuzz target: see [`icos_fuzz::docker_archive`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz::docker_archive(data));
}
