//! Fuzz target: see [`icos_fuzz_harness::docker_archive`].
fn main() {
    afl::fuzz!(|data: &[u8]| icos_fuzz_harness::docker_archive(data));
}
