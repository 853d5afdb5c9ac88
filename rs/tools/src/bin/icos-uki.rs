//! icos-uki: a unified kernel image (systemd-stub + kernel + initrd + cmdline + os-release), and
//! `icos-uki inspect` to list the sections of one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use icos_uki::{
    check_outputs_distinct, cmdline_with_root_hash, read_section, read_sections,
    root_hash_from_verity_params, write_report, write_uki, UkiSpec,
};

#[derive(Parser)]
#[command(
    name = "icos-uki",
    version,
    about = "Write a unified kernel image (UKI) from systemd's linuxx64.efi.stub, deterministically, or list a UKI's sections",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "EXAMPLES:\n  icos-uki --stub linuxx64.efi.stub --linux vmlinuz --initrd initrd.img --osrel os-release \\\n           --cmdline \"console=ttyS0 ro\" --cmdline-from-verity root.verity.json \\\n           --out icos.efi --report-out uki.json\n  icos-uki inspect icos.efi --json\n\n\
The sections .osrel, .cmdline, (.uname), .initrd, .linux are appended in this order after the stub's own;\n\
systemd-boot finds the result as a Type #2 entry when it is copied to /EFI/Linux/NAME.efi on the ESP.\n\
The command line must be printable ASCII (what systemd-stub 252 passes on unchanged)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// List the sections of a UKI (name, address, offset, size, sha256) and its command line.
    Inspect {
        /// The UKI (any PE32+ EFI image) to read.
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BuildArgs {
    /// systemd's linuxx64.efi.stub (package systemd-boot-efi).
    #[arg(long, required = true)]
    stub: Option<PathBuf>,
    /// The kernel (bzImage/vmlinuz with the EFI stub): the .linux section.
    #[arg(long, required = true)]
    linux: Option<PathBuf>,
    /// The initramfs: the .initrd section.
    #[arg(long, required = true)]
    initrd: Option<PathBuf>,
    /// The os-release file: the .osrel section (it must set PRETTY_NAME, IMAGE_ID, NAME or ID).
    #[arg(long, required = true)]
    osrel: Option<PathBuf>,
    /// The kernel command line: the .cmdline section (printable ASCII, written without a NUL).
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Append " roothash=<hex>" taken from the dm-verity parameters (icos.verity-params/v1).
    #[arg(long, value_name = "FILE")]
    cmdline_from_verity: Option<PathBuf>,
    /// The kernel release (`uname -r`): the optional .uname section.
    #[arg(long)]
    uname: Option<String>,
    /// The UKI to write.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Also write the report (schema icos.uki-report/v1) as JSON here.
    #[arg(long)]
    report_out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    icos_tools::exit_with("icos-uki", run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Inspect { file, json }) => inspect(&file, json),
        None => build(cli.build),
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let required = |p: Option<PathBuf>| p.expect("clap enforces required arguments");
    let out = required(args.out);
    let mut cmdline = args.cmdline;
    if let Some(params) = &args.cmdline_from_verity {
        let hash = root_hash_from_verity_params(params)?;
        cmdline = cmdline_with_root_hash(&cmdline, &hash)?;
    }
    let spec = UkiSpec {
        stub: required(args.stub),
        osrel: required(args.osrel),
        cmdline,
        uname: args.uname,
        initrd: required(args.initrd),
        linux: required(args.linux),
    };
    let mut inputs: Vec<&Path> = spec.input_paths().to_vec();
    if let Some(p) = &args.cmdline_from_verity {
        inputs.push(p);
    }
    let mut outputs: Vec<&Path> = vec![&out];
    if let Some(r) = &args.report_out {
        outputs.push(r);
    }
    check_outputs_distinct(&inputs, &outputs)?;

    let report = write_uki(&spec, &out)
        .with_context(|| format!("cannot write the UKI {}", out.display()))?;
    if let Some(r) = &args.report_out {
        write_report(&report, r)?;
    }
    icos_common::progress::summary(format_args!(
        "icos-uki: {} sections, {} ({} bytes) -> {}",
        report.sections.len(),
        report.sha256,
        report.size,
        out.display()
    ));
    Ok(())
}

fn inspect(file: &Path, json: bool) -> Result<()> {
    let sections = read_sections(file)?;
    let text = |name: &str| -> Result<Option<String>> {
        if !sections.iter().any(|s| s.name == name) {
            return Ok(None);
        }
        let bytes = read_section(file, name)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let cmdline = text(".cmdline")?;
    let uname = text(".uname")?;
    if json {
        let mut v = serde_json::json!({ "path": file.display().to_string(), "sections": sections });
        if let Some(c) = cmdline {
            v["cmdline"] = c.into();
        }
        if let Some(u) = uname {
            v["uname"] = u.into();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<10} {:>10} {:>10} {:>10}  sha256",
        "name", "address", "offset", "size"
    );
    for s in &sections {
        println!(
            "{:<10} {:>#10x} {:>#10x} {:>10}  {}",
            s.name, s.virtual_address, s.file_offset, s.size, s.sha256
        );
    }
    if let Some(c) = cmdline {
        println!("cmdline: {c}");
    }
    if let Some(u) = uname {
        println!("uname: {u}");
    }
    Ok(())
}
