use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use icos_common::{Digest, SourceDateEpoch, TOOLS_VERSION};
use icos_release::manifest::{
    build_manifest, tools_from_identity, write_manifest, InputRef, ManifestInputs, ToolRef,
};

/// Writes build-manifest.json (icos.build-manifest/v1): the inputs, tools and outputs of a build.
#[derive(Parser)]
#[command(
    version,
    after_help = "EXAMPLE:\n  icos-manifest --out build-manifest.json --image default --source-date-epoch 1700000000 \\\n    \
--seed \"$SEED\" --rootfs-manifest rootfs.manifest.json --disk-report disk.json \\\n    \
--fs-params esp=esp.params.json --fs-params root=root.params.json \\\n    \
--artifact disk-img.tar.zst --tool icos-tools=0.1.0@sha256:<hex> --input kernel=sha256:<hex>\n\n\
`inputs` lists the rootfs manifest's inputs (base, base:config, base:layer:N, the image\n\
description, injected files, extra layers) followed by each --input. `tools` lists those of\n\
--tools-identity, then each --tool; with neither it is [{\"name\": \"icos-tools\", \"version\": <this version>}]."
)]
struct Args {
    /// The manifest to write.
    #[arg(long)]
    out: PathBuf,
    /// The image name (for example default, dev, prod).
    #[arg(long)]
    image: String,
    /// The build's SOURCE_DATE_EPOCH (default: $SOURCE_DATE_EPOCH); must match the rootfs manifest.
    #[arg(long)]
    source_date_epoch: Option<String>,
    /// The build seed.
    #[arg(long)]
    seed: String,
    /// rootfs.manifest.json from icos-rootfs.
    #[arg(long)]
    rootfs_manifest: PathBuf,
    /// disk.json from icos-disk --report-out.
    #[arg(long)]
    disk_report: PathBuf,
    /// PARTNAME=params.json: filesystem parameters recorded with that partition (repeatable).
    #[arg(long = "fs-params", value_name = "PARTNAME=FILE")]
    fs_params: Vec<String>,
    /// A release file to record with its sha256 and size (repeatable).
    #[arg(long = "artifact", value_name = "FILE")]
    artifacts: Vec<PathBuf>,
    /// tools-identity.txt of the Bazel-built tools: records icos-tools (digest = the file's
    /// sha256), rustc, cargo and cc.
    #[arg(long, value_name = "FILE")]
    tools_identity: Option<PathBuf>,
    /// NAME=VERSION[@sha256:HEX]: a tool used by the build (repeatable; after --tools-identity's).
    #[arg(long = "tool", value_name = "NAME=VERSION[@sha256:HEX]")]
    tools: Vec<String>,
    /// NAME=sha256:HEX: an extra input (repeatable).
    #[arg(long = "input", value_name = "NAME=sha256:HEX")]
    inputs: Vec<String>,
}

fn split<'a>(flag: &str, v: &'a str, example: &str) -> Result<(&'a str, &'a str)> {
    match v.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => bail!("{flag} {v:?} is not in the form {example}"),
    }
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-manifest", run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let epoch = SourceDateEpoch::resolve(args.source_date_epoch.as_deref())?;
    let mut fs_params = Vec::new();
    for v in &args.fs_params {
        let (name, path) = split("--fs-params", v, "PARTNAME=params.json")?;
        fs_params.push((name.to_string(), PathBuf::from(path)));
    }
    let mut inputs = vec![
        ("--rootfs-manifest", args.rootfs_manifest.as_path()),
        ("--disk-report", args.disk_report.as_path()),
    ];
    inputs.extend(fs_params.iter().map(|(_, p)| ("--fs-params", p.as_path())));
    inputs.extend(args.artifacts.iter().map(|p| ("--artifact", p.as_path())));
    inputs.extend(
        args.tools_identity
            .as_deref()
            .map(|p| ("--tools-identity", p)),
    );
    icos_common::check_distinct(&[("--out", &args.out)], &inputs).map_err(anyhow::Error::msg)?;
    let mut tools = match &args.tools_identity {
        Some(p) => tools_from_identity(p).context("icos-manifest")?,
        None => Vec::new(),
    };
    for v in &args.tools {
        let (name, rest) = split("--tool", v, "NAME=VERSION[@sha256:HEX]")?;
        let (version, digest) = match rest.split_once('@') {
            Some((ver, d)) => (
                ver,
                Some(
                    d.parse::<Digest>()
                        .with_context(|| format!("--tool {v:?}"))?,
                ),
            ),
            None => (rest, None),
        };
        tools.push(ToolRef {
            name: name.to_string(),
            version: version.to_string(),
            digest,
            package: None,
        });
    }
    if tools.is_empty() {
        tools.push(ToolRef {
            name: "icos-tools".into(),
            version: TOOLS_VERSION.into(),
            digest: None,
            package: None,
        });
    }
    let mut inputs = Vec::new();
    for v in &args.inputs {
        let (name, d) = split("--input", v, "NAME=sha256:HEX")?;
        let digest = d
            .parse::<Digest>()
            .with_context(|| format!("--input {v:?}"))?;
        inputs.push(InputRef {
            name: name.to_string(),
            uri: None,
            digest,
            size: None,
        });
    }
    let m = ManifestInputs {
        image: args.image,
        source_date_epoch: epoch,
        seed: args.seed,
        rootfs_manifest: args.rootfs_manifest,
        disk_report: args.disk_report,
        fs_params,
        artifacts: args.artifacts,
        tools,
        inputs,
    };
    let manifest = build_manifest(&m).context("icos-manifest")?;
    write_manifest(&manifest, &args.out)
        .with_context(|| format!("icos-manifest: writing {}", args.out.display()))?;
    Ok(())
}
