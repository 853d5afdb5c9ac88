//! `icos-verity`: the dm-verity hash device of a filesystem image, and its verification.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use icos_common::AtomicFile;
use icos_verity::{Progress, RootHash};

#[derive(Parser)]
#[command(
    name = "icos-verity",
    version,
    about = "Write the dm-verity hash device of a data image (veritysetup's format 1, sha256, 4 KiB \
             blocks, salt and UUID from the seed), or verify a data/hash pair against a root hash.",
    after_help = "EXAMPLES:\n  \
icos-verity --data root.ext4 --out root.verity --seed icos-default-v1 --label root --report-out root.verity.json\n  \
icos-verity verify --data root.ext4 --hash root.verity --root-hash 3f5a…(64 hex digits)\n\n\
The hash device is byte-identical to `veritysetup format --salt=SALT --uuid=UUID --hash=sha256\n\
--data-block-size=4096 --hash-block-size=4096` with the salt and UUID of the report.\n\
verify exits 0 when the pair matches the root hash, 1 naming the first damaged block otherwise.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args)]
struct BuildArgs {
    /// The data image (e.g. an ext4 root filesystem); its size must be a multiple of 4096.
    #[arg(long, value_name = "IMAGE", required = true)]
    data: Option<PathBuf>,
    /// The hash device to write (appears only when the build succeeds).
    #[arg(long, value_name = "FILE", required = true)]
    out: Option<PathBuf>,
    /// Build seed: the salt and UUID derive from it and the label.
    #[arg(long, required = true)]
    seed: Option<String>,
    /// Names the tree in the seed purposes (verity:salt:<label>, verity:uuid:<label>).
    #[arg(long, default_value = "root")]
    label: String,
    /// Also write the parameters (schema icos.verity-params/v1, root hash included) as JSON here.
    #[arg(long, value_name = "JSON")]
    report_out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Recompute every level of the tree and compare it with the hash device and the root hash.
    #[command(
        after_help = "EXAMPLE:\n  icos-verity verify --data root.ext4 --hash root.verity \\\n                     --root-hash \"$(jq -r .root_hash root.verity.json)\"\n\n\
Exits 0 when every level matches and the top hashes to the root hash; 1 otherwise, naming the\n\
block closest to the root that does not match (a data block, a hash block, or the root hash)."
    )]
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The data image or device.
    #[arg(long, value_name = "IMAGE")]
    data: PathBuf,
    /// The hash device (superblock and tree).
    #[arg(long, value_name = "FILE")]
    hash: PathBuf,
    /// The trusted root hash (64 hex digits).
    #[arg(long, value_name = "HEX")]
    root_hash: RootHash,
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

fn bar(message: &str) -> Bar {
    Bar(icos_common::progress::bytes(message, Some(0)))
}

fn build(args: BuildArgs) -> Result<()> {
    let (Some(data), Some(out), Some(seed)) = (args.data, args.out, args.seed) else {
        bail!("--data, --out and --seed are required (see --help)");
    };
    let mut outputs = vec![("--out", out.as_path())];
    outputs.extend(args.report_out.as_deref().map(|p| ("--report-out", p)));
    icos_common::check_distinct(&outputs, &[("--data", &data)]).map_err(anyhow::Error::msg)?;

    let mut progress = bar(&format!("icos-verity: hashing {}", data.display()));
    let params = icos_verity::build_hash_device(&data, &out, &seed, &args.label, &mut progress)
        .with_context(|| format!("building {}", out.display()))?;
    progress.0.finish_and_clear();

    if let Some(path) = &args.report_out {
        write_json(path, &params)?;
    }
    icos_common::progress::summary(format_args!(
        "icos-verity: wrote {} ({} bytes, {} data blocks, root hash {})",
        out.display(),
        params.hash_size,
        params.data_blocks,
        params.root_hash
    ));
    Ok(())
}

fn write_json(path: &Path, value: &icos_verity::VerityParams) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value)?;
    json.push(b'\n');
    let mut f = AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    f.commit()
        .with_context(|| format!("writing {}", path.display()))
}

fn verify(args: VerifyArgs) -> Result<()> {
    let mut progress = bar(&format!("icos-verity: verifying {}", args.data.display()));
    let sb = icos_verity::verify_files(&args.data, &args.hash, &args.root_hash, &mut progress)?;
    progress.0.finish_and_clear();
    println!(
        "verified: {} and {} match root hash {} ({} data blocks)",
        args.data.display(),
        args.hash.display(),
        args.root_hash,
        sb.data_blocks()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Verify(args)) => verify(args),
        None => build(cli.build),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icos-verity: error: {}", icos_tools::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
