use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use icos_release::sums::{check_sums, write_sums};

/// Writes or verifies a SHA256SUMS file (coreutils format, sorted by name).
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLES:\n  icos-sums --out release/SHA256SUMS release/disk-img.tar.zst release/build-manifest.json\n  \
icos-sums --check release/SHA256SUMS\n\n\
Names are base names; `sha256sum -c SHA256SUMS` in the same directory verifies the file too.\n\
--check resolves names against the directory of SHA256SUMS and exits non-zero naming each\n\
missing or mismatched file."
)]
struct Args {
    /// The SHA256SUMS file to write.
    #[arg(long, conflicts_with = "check", required_unless_present = "check")]
    out: Option<PathBuf>,
    /// Verify this SHA256SUMS file instead of writing one.
    #[arg(long)]
    check: Option<PathBuf>,
    /// The files to list (with --out).
    files: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(sums) = &args.check {
        if !args.files.is_empty() {
            bail!("--check takes no files: it verifies the ones SHA256SUMS lists");
        }
        let (problems, count) =
            check_sums(sums).with_context(|| format!("icos-sums: checking {}", sums.display()))?;
        for p in &problems {
            eprintln!("{p}");
        }
        if !problems.is_empty() {
            bail!(
                "{} of {count} files listed in {} failed verification",
                problems.len(),
                sums.display()
            );
        }
        return Ok(());
    }
    let out = args.out.expect("clap requires --out without --check");
    write_sums(&args.files, &out)
        .with_context(|| format!("icos-sums: writing {}", out.display()))?;
    Ok(())
}
