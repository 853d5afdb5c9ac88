use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use icos_common::parse_size;
use icos_disk::{build_disk, read_layout, verity_root_hash, write_report, DiskOptions};

/// Assembles a reproducible, sparse GPT disk image from partition images and a layout file.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLE:\n  icos-disk --layout ic-os/layout.toml --seed \"$SEED\" --out disk.img \\\n            --image esp=bazel-out/esp.vfat --image root=bazel-out/root.ext4 --report-out disk.json\n\n\
Partitions are placed in layout order, 1 MiB aligned from 1 MiB; GUIDs come from the seed\n\
(gpt:disk, gpt:partition:<name>). The disk ends 1 MiB after the last partition."
)]
struct Args {
    /// The layout file (TOML, [[partition]] tables).
    #[arg(long)]
    layout: PathBuf,
    /// The build seed; the disk and partition GUIDs are derived from it.
    #[arg(long)]
    seed: String,
    /// The disk image to write (sparse).
    #[arg(long)]
    out: PathBuf,
    /// NAME=PATH: the image for partition NAME, instead of the layout's `image` (repeatable).
    #[arg(long = "image", value_name = "NAME=PATH")]
    images: Vec<String>,
    /// Total disk size instead of the end of the last partition + 1 MiB, e.g. 8GiB.
    #[arg(long, value_parser = parse_size)]
    disk_size: Option<u64>,
    /// NAME=PARAMS: partition NAME holds a dm-verity hash tree; record the root hash of its params
    /// file (icos-verity's report) in the disk report (repeatable).
    #[arg(long = "verity", value_name = "NAME=PARAMS")]
    verity: Vec<String>,
    /// Also write the disk report (schema icos.disk-report/v1) as JSON here.
    #[arg(long)]
    report_out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-disk", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let mut images = BTreeMap::new();
    for i in &args.images {
        let Some((name, path)) = i.split_once('=') else {
            bail!("--image {i:?} is not NAME=PATH (for example --image esp=esp.vfat)");
        };
        if images
            .insert(name.to_string(), PathBuf::from(path))
            .is_some()
        {
            bail!("--image {name}=… is given twice");
        }
    }
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.report_out.as_deref().map(|p| ("--report-out", p)));
    let mut inputs = vec![("--layout", args.layout.as_path())];
    inputs.extend(images.values().map(|p| ("--image", p.as_path())));
    icos_common::check_distinct(&outputs, &inputs).map_err(anyhow::Error::msg)?;
    let opts = DiskOptions {
        seed: args.seed,
        images,
        disk_size: args.disk_size,
    };
    // Every --verity is checked before the disk is written: a failed run leaves no disk behind.
    let layout = read_layout(&args.layout)?;
    let mut root_hashes = BTreeMap::new();
    for v in &args.verity {
        let Some((name, params)) = v.split_once('=') else {
            bail!("--verity {v:?} is not NAME=PARAMS (for example --verity root_a_verity=root.verity.json)");
        };
        if !layout.partition.iter().any(|p| p.name == name) {
            bail!(
                "--verity {v:?}: {} has no partition named {name:?}",
                args.layout.display()
            );
        }
        root_hashes.insert(name.to_string(), verity_root_hash(params.as_ref())?);
    }
    let mut report = build_disk(&args.layout, &args.out, &opts)
        .with_context(|| format!("icos-disk: building {}", args.out.display()))?;
    for p in &mut report.partitions {
        p.verity_root_hash = root_hashes.remove(&p.name);
    }
    if let Some(p) = &args.report_out {
        write_report(&report, p)?;
    }
    Ok(())
}
