use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use icos_common::SourceDateEpoch;
use icos_release::pack::{pack, PackInput, PackOptions};

/// Packs files (disk images) into a reproducible, sparse-aware .tar.zst.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLES:\n  icos-pack --out disk-img.tar.zst --source-date-epoch 1700000000 disk.img\n  \
icos-pack --out update-img.tar.zst --source-date-epoch 1700000000 \\\n            --name boot.img --name root.img esp.vfat root.ext4\n\n\
Entries: mode 0644, owner 0:0, mtime SOURCE_DATE_EPOCH; files with all-zero 4 KiB blocks are stored\n\
in the GNU PAX sparse format 1.0. zstd level 3, multithreaded (output independent of the thread\n\
count), with a content checksum. Prints the archive's sha256 and size."
)]
struct Args {
    /// The .tar.zst to write.
    #[arg(long)]
    out: PathBuf,
    /// Seconds since 1970 for every mtime (default: $SOURCE_DATE_EPOCH).
    #[arg(long)]
    source_date_epoch: Option<String>,
    /// Name in the archive for the file in the same position (repeatable; default: base names).
    #[arg(long = "name")]
    names: Vec<String>,
    /// zstd worker threads (does not change the output; default: $ICOS_PACK_THREADS, else the
    /// available parallelism). For tests that prove the output is thread-count independent.
    #[arg(long, hide = true)]
    threads: Option<u32>,
    /// The files to pack, in archive order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-pack", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let inputs: Vec<_> = args.files.iter().map(|p| ("input", p.as_path())).collect();
    icos_common::check_distinct(&[("--out", &args.out)], &inputs).map_err(anyhow::Error::msg)?;
    let epoch = SourceDateEpoch::resolve(args.source_date_epoch.as_deref())?;
    if args.names.len() > args.files.len() {
        bail!(
            "{} --name values for {} files: give at most one name per file",
            args.names.len(),
            args.files.len()
        );
    }
    let mut inputs = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let name = match args.names.get(i) {
            Some(n) => n.clone(),
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| {
                    format!(
                        "{} has no UTF-8 base name: give one with --name",
                        path.display()
                    )
                })?
                .to_string(),
        };
        inputs.push(PackInput {
            path: path.clone(),
            name,
        });
    }
    let threads = match (args.threads, std::env::var("ICOS_PACK_THREADS")) {
        (Some(n), _) => Some(n),
        (None, Ok(v)) => Some(
            v.parse()
                .with_context(|| format!("ICOS_PACK_THREADS={v:?} is not a number"))?,
        ),
        (None, Err(_)) => None,
    };
    let report = pack(
        &inputs,
        &args.out,
        &PackOptions {
            source_date_epoch: epoch,
            threads,
        },
    )
    .with_context(|| format!("icos-pack: writing {}", args.out.display()))?;
    icos_common::progress::summary(format_args!(
        "icos-pack: {} {} {}",
        report.sha256,
        report.size,
        args.out.display()
    ));
    Ok(())
}
