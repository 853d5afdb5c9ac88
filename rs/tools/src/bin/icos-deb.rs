//! icos-deb: turn selected members of a pinned Debian package into a tar layer.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use icos_common::Digest;
use icos_deb::{extract_file, write_layer, LayerOptions};

#[derive(Parser)]
#[command(
    name = "icos-deb",
    version,
    about = "Copy selected members of a pinned Debian package (.deb) into a tar layer, or one file out of it, without dpkg or root",
    after_help = "EXAMPLES:\n  icos-deb --deb linux-image-6.1.0-56-amd64.deb --sha256 sha256:a86e… \\\n    --include '/boot/vmlinuz-*' --rename /boot/vmlinuz-6.1.0-56-amd64=/vmlinuz --out kernel.tar\n  icos-deb --deb systemd-boot-efi.deb --sha256 sha256:8f2b… \\\n    --extract /usr/lib/systemd/boot/efi/linuxx64.efi.stub --out linuxx64.efi.stub\n\nEvery --include and --rename must match at least one member, so a package update that moves a file fails here."
)]
struct Args {
    /// The .deb to read.
    #[arg(long)]
    deb: PathBuf,
    /// The package's pinned sha256 (sha256:<hex>); checked before anything is read.
    #[arg(long)]
    sha256: Option<Digest>,
    /// Glob over absolute member paths to keep (repeatable; default: everything).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Rename an absolute member path: FROM=TO (repeatable).
    #[arg(long, value_name = "FROM=TO", value_parser = parse_rename)]
    rename: Vec<(String, String)>,
    /// Write the content of this one regular-file member (an absolute path) to --out instead of a layer.
    #[arg(long, value_name = "MEMBER", conflicts_with_all = ["include", "rename"])]
    extract: Option<String>,
    /// The tar layer (or, with --extract, the file) to write.
    #[arg(long)]
    out: PathBuf,
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    let (from, to) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not FROM=TO"))?;
    if !from.starts_with('/') || !to.starts_with('/') || to.split('/').any(|c| c == "..") {
        return Err(format!("{s:?}: both paths must be absolute, without '..'"));
    }
    Ok((from.to_string(), to.to_string()))
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-deb", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    icos_common::check_distinct(&[("--out", &args.out)], &[("--deb", &args.deb)])
        .map_err(anyhow::Error::msg)?;
    if let Some(member) = &args.extract {
        extract_file(&args.deb, args.sha256.as_ref(), member, &args.out)
            .with_context(|| format!("cannot extract {member} from {}", args.deb.display()))?;
        return Ok(());
    }
    let opts = LayerOptions {
        include: args.include,
        renames: args.rename,
        expect: args.sha256,
    };
    let summary = write_layer(&args.deb, &opts, &args.out)
        .with_context(|| format!("cannot make a layer from {}", args.deb.display()))?;
    icos_common::progress::summary(format_args!(
        "icos-deb: {} entries, {} ({} bytes) -> {}",
        summary.entries,
        summary.sha256,
        summary.size,
        args.out.display()
    ));
    Ok(())
}
