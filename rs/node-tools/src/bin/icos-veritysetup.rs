//! icos-veritysetup: map the verified root in the initramfs (the part of `veritysetup open` an
//! icos node needs, without libcryptsetup, udev or a shell pipeline).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use icos_node::{block, dm::Control, root};
use icos_verity::RootHash;

#[derive(Parser)]
#[command(
    name = "icos-veritysetup",
    version,
    about = "Map the slot that belongs to a root hash read-only through dm-verity, or show a mapping",
    after_help = "EXAMPLES:\n  icos-veritysetup open root                # root hash from roothash= on /proc/cmdline\n  \
icos-veritysetup open root --root-hash 4f1c…\n  icos-veritysetup status root\n\n\
`open` looks at every partition pair X / X_verity (GPT names), takes the one whose hash tree\n\
belongs to the root hash, maps it as /dev/mapper/NAME and prints which slot that is."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Where the kernel lists block devices.
    #[arg(long, global = true, default_value = "/sys/class/block")]
    sys_block: PathBuf,
    /// Where device nodes live.
    #[arg(long, global = true, default_value = "/dev")]
    dev: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Find the slot of the root hash and map it read-only as /dev/mapper/NAME.
    Open {
        name: String,
        /// The trusted root hash (64 hex digits); default: roothash= of the kernel command line.
        #[arg(long)]
        root_hash: Option<String>,
        /// The kernel command line to read roothash= from.
        #[arg(long, default_value = "/proc/cmdline")]
        cmdline: PathBuf,
        /// What the kernel does on corruption: eio (fail the read), restart or panic.
        #[arg(long, default_value = "eio", value_parser = ["eio", "restart", "panic"])]
        on_corruption: String,
    },
    /// Print the mapping's table and dm-verity status (V: verified so far, C: corruption seen).
    Status { name: String },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let control = Control::open(&args.dev.join("mapper/control"))?;
    match args.command {
        Command::Open {
            name,
            root_hash,
            cmdline,
            on_corruption,
        } => {
            let root_hash = match root_hash {
                Some(hex) => hex,
                None => root_hash_from_cmdline(&cmdline)?,
            };
            let root_hash = RootHash::from_hex(&root_hash).context("the root hash")?;
            let parts = block::partitions(&args.sys_block, &args.dev)?;
            let slot = root::find_slot(&parts, &root_hash)?;
            let opt: &[&str] = match on_corruption.as_str() {
                "restart" => &["restart_on_corruption"],
                "panic" => &["panic_on_corruption"],
                _ => &[],
            };
            let device = root::open(&control, &name, &slot, &root_hash, opt)?;
            let node = args.dev.join("mapper").join(&name);
            make_block_node(&node, device.major, device.minor)?;
            eprintln!(
                "icos-veritysetup: {} = {} ({}) verified by {} ({}), root hash {}",
                node.display(),
                slot.data.name,
                slot.data.devname,
                slot.hash.name,
                slot.hash.devname,
                root_hash.to_hex()
            );
        }
        Command::Status { name } => {
            for t in control.table(&name)? {
                println!(
                    "table {name}: {} {} {} {}",
                    t.start, t.length, t.target, t.params
                );
            }
            for t in control.status(&name)? {
                println!(
                    "status {name}: {} {} {} {}",
                    t.start, t.length, t.target, t.params
                );
            }
        }
    }
    Ok(())
}

fn root_hash_from_cmdline(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("roothash="));
    let Some(hash) = found.next() else {
        bail!(
            "{} carries no roothash=: the boot artifact is not a verified one",
            path.display()
        );
    };
    if found.next().is_some() {
        bail!(
            "{} carries roothash= twice: refusing to guess which one the image means",
            path.display()
        );
    }
    Ok(hash.to_string())
}

fn make_block_node(node: &Path, major: u32, minor: u32) -> Result<()> {
    if let Some(parent) = node.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let c = CString::new(node.as_os_str().as_bytes()).context("device node path")?;
    // SAFETY: a valid NUL-terminated path; mknod has no other memory effects.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFBLK | 0o600,
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::AlreadyExists {
            bail!("cannot create the device node {}: {err}", node.display());
        }
    }
    Ok(())
}
