use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use icos_common::{parse_size, SourceDateEpoch};
use icos_vfat::{build_vfat, write_params, VfatOptions};

/// Writes a reproducible FAT32 image (an ESP) from a rootfs-format tar.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLE:\n  icos-vfat --tree esp.tar --out esp.vfat --seed \"$SEED\" --source-date-epoch 1700000000 \\\n            --size 64MiB --label ESP --params-out esp.params.json\n\n\
The volume id comes from the seed and the label; every timestamp is SOURCE_DATE_EPOCH (UTC,\n\
clamped to 1980-01-01, FAT's first day). Only directories and regular files are accepted;\n\
names may hold 255 UTF-16 units and paths 259 (FAT's limits), a directory 65536 entries of\n\
32 bytes, a file 4 GiB - 1 bytes. Names FAT compares as equal (per-character upper case) are\n\
refused; a literal 8.3 name like LONGNA~1.TXT keeps its short name, and long names take the\n\
next free ~N alias."
)]
struct Args {
    /// The tree to copy: a tar in the rootfs tar format (owners and modes are ignored).
    #[arg(long)]
    tree: PathBuf,
    /// The FAT image to write.
    #[arg(long)]
    out: PathBuf,
    /// The build seed; the volume id is derived from it and the label.
    #[arg(long)]
    seed: String,
    /// Seconds since 1970 for every timestamp (default: $SOURCE_DATE_EPOCH).
    #[arg(long)]
    source_date_epoch: Option<String>,
    /// Image size, e.g. 64MiB (FAT32 needs at least 33MiB).
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Volume label: up to 11 characters, A-Z 0-9 space and !#$%&'()-@^_`{}~.
    #[arg(long, default_value = "ESP")]
    label: String,
    /// Also write the image parameters (schema icos.vfat-params/v1) as JSON here.
    #[arg(long)]
    params_out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-vfat", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.params_out.as_deref().map(|p| ("--params-out", p)));
    icos_common::check_distinct(&outputs, &[("--tree", &args.tree)]).map_err(anyhow::Error::msg)?;
    let epoch = SourceDateEpoch::resolve(args.source_date_epoch.as_deref())?;
    let opts = VfatOptions {
        size: args.size,
        seed: args.seed,
        label: args.label,
        source_date_epoch: epoch,
    };
    let params = build_vfat(&args.tree, &args.out, &opts)
        .with_context(|| format!("icos-vfat: building {}", args.out.display()))?;
    if let Some(p) = &args.params_out {
        write_params(&params, p)?;
    }
    Ok(())
}
