//! icos-fetch: resolve a pinned base image, verify every blob, optionally write it as an OCI layout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use icos_common::progress;
use icos_oci::{BaseRef, Image, OpenOptions, Platform};

#[derive(Parser)]
#[command(
    name = "icos-fetch",
    version,
    about = "Resolve a pinned base image, verify every blob (digest and size), and optionally write it as an OCI layout.",
    after_help = "EXAMPLE:\n  icos-fetch docker://registry.example.com/ic/base@sha256:4f1c…e2 --platform linux/amd64 \\\n             --store ~/.cache/icos/blobs --out-layout build/base --json\n\n\
Then build offline from the layout with --base oci:build/base@<manifest digest printed above>.\n\
REF is one of oci:DIR@sha256:…, oci-archive:FILE.tar@sha256:…, docker-archive:FILE.tar@sha256:… (image ID)\n\
or docker://HOST[:PORT]/REPO@sha256:…. Plain http is used only for loopback registries. For registries that\n\
need an account, ICOS_REGISTRY_USERNAME and ICOS_REGISTRY_PASSWORD are sent to the token endpoint."
)]
struct Cli {
    /// The pinned base image reference (must end in @sha256:<64 hex>).
    #[arg(value_name = "REF")]
    reference: String,
    /// The platform to pick when the digest names an index.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    platform: String,
    /// Content-addressed blob cache for registry pulls (DIR/blobs/sha256/<hex>); a second fetch is offline.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Write the image as a minimal OCI layout at DIR (replaced atomically).
    #[arg(long, value_name = "DIR")]
    out_layout: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icos-fetch: error: {}", icos_tools::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if let (Some(out), Some(store)) = (&cli.out_layout, &cli.store) {
        icos_common::check_distinct(&[("--out-layout", out)], &[("--store", store)])
            .map_err(anyhow::Error::msg)?;
    }
    let reference: BaseRef = cli.reference.parse()?;
    let platform: Platform = cli.platform.parse()?;
    let image = Image::open(
        &reference,
        &OpenOptions {
            platform: platform.clone(),
            store: cli.store.clone(),
        },
    )?;

    let count = image.layers().len();
    for (i, layer) in image.layers().iter().enumerate() {
        let hex = layer.digest.hex();
        let bar = progress::bytes(
            &format!("layer {}/{count} {}", i + 1, &hex[..12]),
            Some(layer.size),
        );
        let verified = image.verify_layer(i, &mut |n| bar.inc(n));
        bar.finish_and_clear();
        verified?;
    }
    let layout = match &cli.out_layout {
        Some(dir) => {
            image
                .write_layout(dir)
                .with_context(|| format!("writing the OCI layout {}", dir.display()))?;
            Some(format!("oci:{}@{}", dir.display(), image.manifest_digest()))
        }
        None => None,
    };

    if cli.json {
        let report = serde_json::json!({
            "reference": reference.to_string(),
            "platform": platform.to_string(),
            "index": image.index_digest().map(|d| d.to_string()),
            "manifest": image.manifest_digest().to_string(),
            "manifest_media_type": image.manifest_media_type(),
            "config": image.config_digest().to_string(),
            "layers": image.layers().iter().map(|l| serde_json::json!({
                "digest": l.digest.to_string(),
                "media_type": l.media_type,
                "size": l.size,
            })).collect::<Vec<_>>(),
            "layout": layout,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("reference  {reference}");
        if let Some(index) = image.index_digest() {
            println!("index      {index} (platform {platform})");
        }
        println!(
            "manifest   {} ({})",
            image.manifest_digest(),
            image.manifest_media_type()
        );
        println!("config     {}", image.config_digest());
        for (i, l) in image.layers().iter().enumerate() {
            println!(
                "layer {:<4} {} {} bytes {}",
                i + 1,
                l.digest,
                l.size,
                l.media_type
            );
        }
        if let Some(layout) = layout {
            println!("layout     {layout}");
        }
    }
    Ok(())
}
