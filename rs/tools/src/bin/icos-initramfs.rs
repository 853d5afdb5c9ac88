//! icos-initramfs: a rootfs tar -> a reproducible gzip-compressed newc initramfs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "icos-initramfs",
    version,
    about = "Write a reproducible initramfs (newc cpio, gzip without name or time) from a rootfs tar",
    after_help = "EXAMPLE:\n  icos-rootfs --spec initramfs.toml --source-date-epoch 1764028800 --out initramfs.tar --manifest initramfs.json\n  icos-initramfs --tree initramfs.tar --out initrd.img\n\nOrder, owners, modes and mtimes come from the tar (normalized by icos-rootfs); xattrs are refused."
)]
struct Args {
    /// The rootfs tar whose entries become the initramfs.
    #[arg(long)]
    tree: PathBuf,
    /// The initramfs to write.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-initramfs", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    icos_common::check_distinct(&[("--out", &args.out)], &[("--tree", &args.tree)])
        .map_err(anyhow::Error::msg)?;
    let summary = icos_initramfs::write_initramfs(&args.tree, &args.out)
        .with_context(|| format!("cannot write the initramfs {}", args.out.display()))?;
    icos_common::progress::summary(format_args!(
        "icos-initramfs: {} entries, {} ({} bytes)",
        summary.entries, summary.sha256, summary.size
    ));
    Ok(())
}
