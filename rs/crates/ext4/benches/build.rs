//! Throughput of a whole build: `cargo bench -p icos-ext4`.
//!
//! Uses the tar named by ICOS_EXT4_BENCH_TAR if set (e.g. a real rootfs), else a generated one
//! (2 000 directories, 40 000 files, about 1.1 GiB).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use icos_common::SourceDateEpoch;
use icos_ext4::{build_image, NoProgress, Options};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let tar = match std::env::var_os("ICOS_EXT4_BENCH_TAR") {
        Some(p) => p.into(),
        None => {
            let path = dir.path().join("bench.tar");
            let mut v = vec![e("", Body::Dir)];
            let chunk = data(1, 1 << 20);
            for d in 0..2000 {
                v.push(e(&format!("d{d:04}"), Body::Dir));
                for f in 0..20 {
                    // sizes from 0 to ~40 KB, and every 1000th file 8 MiB
                    let len = if (d * 20 + f) % 1000 == 0 {
                        8 << 20
                    } else {
                        (d * 37 + f * 4099) % 40_000
                    };
                    let body: Vec<u8> = chunk.iter().cycle().skip(f).take(len).copied().collect();
                    v.push(e(&format!("d{d:04}/f{f:02}"), Body::File(body)));
                }
            }
            write_tar(&path, v);
            path
        }
    };
    let size = std::fs::metadata(&tar).unwrap().len();
    let out = dir.path().join("bench.ext4");
    let opts = Options::new("bench", SourceDateEpoch(SDE));
    let t = Instant::now();
    let p = build_image(&tar, &out, &opts, &mut NoProgress).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "tar {} MiB -> image {} MiB ({} inodes used) in {secs:.2} s: {:.0} MiB/s of tar",
        size >> 20,
        p.size_bytes >> 20,
        p.inodes_count - p.free_inodes,
        (size >> 20) as f64 / secs
    );
}
