use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use icos_diff::{diff_dirs, Options};

/// Compares two release directories and names the artifact, partition, file and attribute that differ.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLE:\n  icos-diff build1/bazel-bin/ic-os build2/bazel-bin/ic-os\n  \
icos-diff A B --json > diff.json\n  \
icos-diff A B --diffoscope --rootfs-tar-a A/rootfs.tar --rootfs-tar-b B/rootfs.tar\n\n\
Every file of both directories is hashed by icos-diff itself (SHA256SUMS and the manifests are\n\
claims it checks against the bytes, naming a manifest that does not describe its file). Findings\n\
come one per line, most significant first: files that differ or exist on one side, manifests\n\
that disagree with the bytes, fields of differing JSON files (build manifest, rootfs manifest,\n\
provenance, SBOM), partitions, root filesystem paths and attributes, then every differing region\n\
of the packaged images and, in ext4 partitions, every differing structure (superblock field,\n\
group descriptor, bitmap, inode and field, data blocks), inodes and blocks named by their file.\n\
Packaged images are streamed, never extracted; symbolic links and special files in a release\n\
directory are refused.\n\n\
EXIT STATUS: 0 identical, 1 differences found, 2 error (unreadable or malformed input)."
)]
struct Args {
    /// The first release directory (SHA256SUMS, build-manifest.json, rootfs.manifest.json, *.tar.zst, …).
    a_dir: PathBuf,
    /// The second release directory.
    b_dir: PathBuf,
    /// Print the report as JSON (schema icos.diff-report/v2) instead of lines.
    #[arg(long)]
    json: bool,
    /// Run diffoscope on the first file whose content differs (needs --rootfs-tar-a/-b).
    #[arg(long)]
    diffoscope: bool,
    /// The rootfs tar of A, to extract that file from (plain or zstd-compressed).
    #[arg(long, value_name = "PATH")]
    rootfs_tar_a: Option<PathBuf>,
    /// The rootfs tar of B.
    #[arg(long, value_name = "PATH")]
    rootfs_tar_b: Option<PathBuf>,
}

fn run(args: Args) -> Result<u8> {
    let opts = Options {
        diffoscope: args.diffoscope,
        rootfs_tar_a: args.rootfs_tar_a,
        rootfs_tar_b: args.rootfs_tar_b,
        diffoscope_program: None,
    };
    let report = diff_dirs(&args.a_dir, &args.b_dir, &opts).with_context(|| {
        format!(
            "comparing {} with {}",
            args.a_dir.display(),
            args.b_dir.display()
        )
    })?;
    print!(
        "{}",
        if args.json {
            report.render_json()
        } else {
            report.render_text()
        }
    );
    Ok(report.exit_code() as u8)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("icos-diff: error: {}", icos_tools::error_line(&e));
            ExitCode::from(2)
        }
    }
}
