//! icos-upgrade: apply a signed update to the inactive A/B slot of a verified node, and mark the
//! running slot good after it booted. The work is in the `icos-update` crate.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use icos_node::disk::Disk;
use icos_sign::PublicKey;
use icos_update::{apply_reporting, mark_good, read_signed, Marked, Running};
use icos_verity::RootHash;

#[derive(Parser)]
#[command(
    name = "icos-upgrade",
    version,
    about = "Apply a signed update to the inactive A/B slot; mark the running slot good",
    after_help = "EXAMPLES:\n  icos-upgrade apply --package /mnt/update-img.tar.zst --manifest /mnt/update-manifest.json\n  \
curl -s https://mirror/update-img.tar.zst | icos-upgrade apply --package - --manifest m.json\n  \
icos-upgrade mark-good\n  \
icos-upgrade apply --disk disk.img --root-hash 4f1c… --os-release os-release --package … --manifest …\n\n\
apply verifies the manifest's signature (MANIFEST.minisig) with the baked release key before\n\
anything else, refuses a version not greater than the running one (IMAGE_VERSION of the running\n\
root's os-release), writes the slot the running root hash does not belong to, checks its whole\n\
dm-verity tree and the UKI it wrote, and only then adds the UKI as <id>_<version>+3.efi, which\n\
systemd-boot tries three times before it falls back. mark-good, run after a good boot, makes the\n\
running entry permanent."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct NodeArgs {
    /// The release public key (minisign).
    #[arg(long, value_name = "FILE", default_value = "/etc/icos/release.pub")]
    public_key: PathBuf,
    /// The running root's os-release (IMAGE_ID, IMAGE_VERSION).
    #[arg(long, value_name = "FILE", default_value = "/etc/os-release")]
    os_release: PathBuf,
    /// The running root hash (64 hex digits); default: roothash= of --cmdline.
    #[arg(long)]
    root_hash: Option<String>,
    /// The kernel command line to read roothash= from.
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// Work on a whole-disk image file (its GPT) instead of the node's block devices.
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// Where the kernel lists block devices.
    #[arg(long, default_value = "/sys/class/block")]
    sys_block: PathBuf,
    /// Where device nodes live.
    #[arg(long, default_value = "/dev")]
    dev: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Verify and write an update into the inactive slot, then boot it next (with tries left).
    Apply {
        /// The update package (update-img.tar.zst), or - for standard input.
        #[arg(long, value_name = "FILE")]
        package: PathBuf,
        /// The update manifest (update-manifest.json).
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// Its signature; default: MANIFEST.minisig.
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// Give up when the package source sends nothing for this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        stall_timeout: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// After a good boot: make the running entry permanent (drop its boot counter).
    MarkGood {
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icos-upgrade: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Apply {
            package,
            manifest,
            signature,
            stall_timeout,
            node,
        } => {
            // The signature first: nothing of the manifest or the package is looked at before.
            let key = PublicKey::load(&node.public_key)?;
            let sig = signature
                .unwrap_or_else(|| PathBuf::from(format!("{}.minisig", manifest.display())));
            let m = read_signed(&manifest, &sig, &key)?;
            let (disk, running) = node.resolve()?;
            let (source, name): (Box<dyn Read + Send>, String) = if package == Path::new("-") {
                (Box::new(std::io::stdin()), "(standard input)".into())
            } else {
                let f = std::fs::File::open(&package)
                    .with_context(|| format!("cannot open {}", package.display()))?;
                (Box::new(f), package.display().to_string())
            };
            let version = m.version.clone();
            let done = apply_reporting(
                &disk,
                &running,
                &m,
                source,
                &name,
                Duration::from_secs(stall_timeout),
                &mut |slot| {
                    eprintln!(
                        "icos-upgrade: version {version} checked; writing it to {} + {}",
                        slot.data.name, slot.hash.name
                    )
                },
            )?;
            eprintln!(
                "icos-upgrade: version {} written to {} + {} and verified; next boot: {} ({} tries){}",
                m.version,
                done.slot,
                done.hash_slot,
                done.entry,
                icos_update::esp::TRIES,
                if done.removed.is_empty() {
                    String::new()
                } else {
                    format!("; removed {}", done.removed.join(", "))
                }
            );
        }
        Command::MarkGood { node } => {
            let (disk, running) = node.resolve()?;
            match mark_good(&disk, &running)? {
                Marked::Renamed(from, to) => {
                    eprintln!(
                        "icos-upgrade: version {} marked good: {from} -> {to}",
                        running.version
                    )
                }
                Marked::AlreadyGood(name) => {
                    eprintln!(
                        "icos-upgrade: version {} was good already ({name})",
                        running.version
                    )
                }
            }
        }
    }
    Ok(())
}

impl NodeArgs {
    fn resolve(&self) -> Result<(Disk, Running)> {
        let hex = match &self.root_hash {
            Some(h) => h.clone(),
            None => root_hash_from_cmdline(&self.cmdline)?,
        };
        let root_hash = RootHash::from_hex(&hex).context("the running root hash")?;
        let text = std::fs::read_to_string(&self.os_release)
            .with_context(|| format!("cannot read {}", self.os_release.display()))?;
        let (image_id, version) = icos_update::apply::os_release_fields(&text, &self.os_release)?;
        let disk = match &self.disk {
            Some(p) => Disk::Image(p.clone()),
            None => Disk::Devices {
                sys_block: self.sys_block.clone(),
                dev: self.dev.clone(),
            },
        };
        Ok((
            disk,
            Running {
                root_hash,
                image_id,
                version,
            },
        ))
    }
}

fn root_hash_from_cmdline(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let found: Vec<&str> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("roothash="))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "{} carries no roothash=: this node does not run a verified image, refusing to upgrade it",
            path.display()
        ),
        _ => bail!("{} carries roothash= more than once", path.display()),
    }
}
