use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use icos_release::sums::{check_sums, write_sums};

/// Writes or verifies a SHA256SUMS file (coreutils format, sorted by name).
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLES:\n  icos-sums --out release/SHA256SUMS release/disk-img.tar.zst release/build-manifest.json\n  \
icos-sums --check release/SHA256SUMS\n\n\
Names are base names; `sha256sum -c --strict SHA256SUMS` in the same directory verifies the file too.\n\
--check behaves like `sha256sum -c --strict` run in the directory of SHA256SUMS, and is stricter:\n\
every listed name must be a plain file name (one path component: not '.', '..', absolute or\n\
containing '/' or '\\') of a regular file, symbolic links are not followed, FIFOs and devices are\n\
refused without blocking, lines are at most 4096 bytes, and a list without a single file fails.\n\
It names each failing line or file and why (at most 100, then how many more), and exits 1 if\n\
any failed."
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

fn run(args: Args) -> Result<()> {
    if let Some(sums) = &args.check {
        if !args.files.is_empty() {
            bail!("--check takes no files: it verifies the ones SHA256SUMS lists");
        }
        // Every error of check_sums names SHA256SUMS already (as sha256sum's do).
        let check = check_sums(sums)?;
        for p in &check.problems {
            eprintln!("{}: {p}", sums.display());
        }
        if check.failed > check.problems.len() {
            eprintln!(
                "{}: … and {} more problems",
                sums.display(),
                check.failed - check.problems.len()
            );
        }
        if check.failed > 0 {
            bail!(
                "{} of {} lines of {} failed verification",
                check.failed,
                check.lines,
                sums.display()
            );
        }
        println!("{}: {} files OK", sums.display(), check.ok);
        return Ok(());
    }
    let out = args.out.expect("clap requires --out without --check");
    let inputs: Vec<_> = args.files.iter().map(|p| ("input", p.as_path())).collect();
    icos_common::check_distinct(&[("--out", &out)], &inputs).map_err(anyhow::Error::msg)?;
    write_sums(&args.files, &out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icos-sums: error: {}", icos_tools::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
