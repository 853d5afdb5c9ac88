//! `icos-ext4`: the root filesystem image, written directly from the rootfs tar.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use icos_common::{AtomicFile, SourceDateEpoch};
use icos_ext4::{ImageSize, Options, Progress};

#[derive(Parser)]
#[command(
    name = "icos-ext4",
    version,
    about = "Write an ext4 filesystem image directly from a rootfs tar: no root, no mounts, reproducible.",
    after_help = "EXAMPLE:\n  icos-ext4 --rootfs rootfs.tar --out root.ext4 --seed build-42 --source-date-epoch 1700000000 \\\n            --size auto --label root --params-out root.ext4-params.json"
)]
struct Args {
    /// The rootfs tar (icos-rootfs output: ./-prefixed names, sorted, root first).
    #[arg(long, value_name = "TAR")]
    rootfs: PathBuf,
    /// The image to write (sparse; appears only when the build succeeds).
    #[arg(long, value_name = "IMAGE")]
    out: PathBuf,
    /// Build seed: the filesystem UUID and directory hash seed derive from it and the label.
    #[arg(long)]
    seed: String,
    /// Every timestamp in the image [default: $SOURCE_DATE_EPOCH].
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    /// Image size (4096, 512MiB, 2GiB; a multiple of 4 KiB) or "auto" (content + 10 % + 4 MiB, rounded to 1 MiB).
    #[arg(long, default_value = "auto")]
    size: ImageSize,
    /// Volume label (at most 16 bytes).
    #[arg(long, default_value = "root")]
    label: String,
    /// Minimum inode count [default: one per 16 KiB, at least what the tar needs].
    #[arg(long, value_name = "N")]
    inodes: Option<u64>,
    /// Also write the image parameters (schema icos.ext4-params/v1) as JSON here.
    #[arg(long, value_name = "JSON")]
    params_out: Option<PathBuf>,
}

/// The library reports progress; the binary draws it (on a terminal only).
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&mut self, total: u64) {
        self.0.set_length(total)
    }
    fn advance(&mut self, n: u64) {
        self.0.inc(n)
    }
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-ext4", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.params_out.as_deref().map(|p| ("--params-out", p)));
    icos_common::check_distinct(&outputs, &[("--rootfs", &args.rootfs)])
        .map_err(anyhow::Error::msg)?;
    let sde = SourceDateEpoch::resolve(args.source_date_epoch.as_deref())?;
    let mut opts = Options::new(args.seed, sde);
    opts.size = args.size;
    opts.label = args.label;
    opts.inodes = args.inodes;

    let mut bar = Bar(icos_common::progress::bytes(
        "icos-ext4: copying file data",
        Some(0),
    ));
    let params = icos_ext4::build_image(&args.rootfs, &args.out, &opts, &mut bar)
        .with_context(|| format!("building {}", args.out.display()))?;
    bar.0.finish_and_clear();

    if let Some(path) = &args.params_out {
        let mut json = serde_json::to_vec_pretty(&params)?;
        json.push(b'\n');
        let mut f =
            AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, &json)
            .with_context(|| format!("writing {}", path.display()))?;
        f.commit()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    icos_common::progress::summary(format_args!(
        "icos-ext4: wrote {} ({} bytes, uuid {}, {} of {} blocks free)",
        args.out.display(),
        params.size_bytes,
        params.uuid,
        params.free_blocks,
        params.blocks_count
    ));
    Ok(())
}
