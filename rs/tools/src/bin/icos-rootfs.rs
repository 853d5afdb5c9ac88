use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use icos_common::SourceDateEpoch;
use icos_oci::{BaseRef, Image, OciError, OpenOptions, Platform};
use icos_rootfs::manifest::{BaseInput, BaseLayer};
use icos_rootfs::{ImageSpec, RootfsBuilder};

/// Flattens a pinned base image and an image.toml into one reproducible rootfs tar and its manifest.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLE:\n  icos-rootfs --base oci:build/base@sha256:4f1c…e2 --spec ic-os/guestos/image.toml \\\n              --source-date-epoch 1700000000 --out rootfs.tar --manifest rootfs.manifest.json\n\n\
Layers are applied in order with OCI whiteouts, then the spec: [[layer]] tars, remove globs,\n\
[[dir]], [[file]], [[symlink]]. Without --base the tree comes from the spec alone (e.g. the ESP).\n\
The tar is sorted, mtimes are clamped to SOURCE_DATE_EPOCH and owners are numeric; the same\n\
inputs give the same bytes. Nothing is extracted onto the host."
)]
struct Args {
    /// The base image, pinned: oci:DIR@sha256:…, oci-archive:FILE@sha256:…,
    /// docker-archive:FILE@sha256:… or docker://HOST/REPO@sha256:….
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// Picks the manifest when the base digest names an index.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    /// Blob cache for registry bases.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The image description (image.toml) applied on top of the base.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Look up the spec's relative `source` paths here instead of beside the spec (repeatable:
    /// the first directory that has the file wins).
    #[arg(long, value_name = "DIR")]
    source_root: Vec<PathBuf>,
    /// Seconds since 1970 for clamped and injected mtimes (default: $SOURCE_DATE_EPOCH; required).
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    /// The rootfs tar to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The manifest (schema icos.rootfs-manifest/v1) to write.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace.
            eprintln!("icos-rootfs: error: {}", icos_tools::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let epoch = SourceDateEpoch::resolve(args.source_date_epoch.as_deref())?;
    let inputs: Vec<_> = args.spec.iter().map(|p| ("--spec", p.as_path())).collect();
    icos_common::check_distinct(
        &[("--out", &args.out), ("--manifest", &args.manifest)],
        &inputs,
    )
    .map_err(anyhow::Error::msg)?;
    if args.base.is_none() && args.spec.is_none() {
        bail!("nothing to build: give --base, --spec or both");
    }
    let spec = match &args.spec {
        Some(path) => Some(ImageSpec::load(path, &args.source_root)?),
        None => None,
    };
    let out_dir = match args.out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = RootfsBuilder::new(out_dir, epoch)?;

    let base = match &args.base {
        None => None,
        Some(text) => {
            let reference: BaseRef = text.parse()?;
            let platform: Platform = args.platform.parse()?;
            let image = Image::open(
                &reference,
                &OpenOptions {
                    platform,
                    store: args.store.clone(),
                },
            )?;
            for (i, layer) in image.layers().iter().enumerate() {
                let name = format!("layer {} ({}) of {}", i + 1, layer.digest, reference);
                // Uncompressed layers in local files are read in place; the rest stream.
                match opened(&mut builder, image.map_layer(i), &name)? {
                    Some(mapped) => {
                        let bytes = mapped.bytes().clone();
                        builder.apply_mapped_layer(&name, bytes, move || mapped.verify())?
                    }
                    None => {
                        let layer = opened(&mut builder, image.open_layer(i), &name)?;
                        builder.apply_layer(&name, layer)?
                    }
                }
            }
            Some(BaseInput {
                reference: reference.to_string(),
                manifest: image.manifest_digest(),
                config: image.config_digest(),
                layers: image
                    .layers()
                    .iter()
                    .map(|l| BaseLayer {
                        digest: l.digest,
                        media_type: l.media_type.clone(),
                        size: l.size,
                    })
                    .collect(),
            })
        }
    };
    if let Some(spec) = &spec {
        builder.apply_spec(spec)?;
    }
    let report = builder.write(&args.out, &args.manifest, base)?;
    for pattern in &report.unmatched_removals {
        let spec = args.spec.as_deref().unwrap_or(Path::new("?"));
        eprintln!(
            "icos-rootfs: warning: {}: remove pattern {pattern:?} matched nothing",
            spec.display()
        );
    }
    Ok(())
}

/// An opened layer, or the error: an earlier layer that failed its verification (which goes on
/// beside the build) is reported first.
fn opened<T>(
    builder: &mut RootfsBuilder,
    result: Result<T, OciError>,
    layer: &str,
) -> anyhow::Result<T> {
    result.or_else(|e| {
        builder.finish_verifying()?;
        Err(anyhow::Error::new(e).context(format!("cannot open {layer}")))
    })
}
