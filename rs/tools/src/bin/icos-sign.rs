//! icos-sign: minisign keys and signatures, release verification, SLSA provenance, SPDX SBOM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use icos_sign::{
    keygen, provenance::ProvenanceRequest, sbom::SbomRequest, sign_file, verify_release,
    write_provenance, write_sbom, Password, Protection, PublicKey, SigningKey,
};

#[derive(Parser)]
#[command(
    name = "icos-sign",
    version,
    about = "Sign and verify icos releases (minisign), and write their SLSA provenance and SPDX SBOM.",
    after_help = "EXAMPLE:\n  ICOS_SIGN_PASSWORD=… icos-sign keygen --secret-key release.key --public-key release.pub\n  icos-sign sign --secret-key release.key --password-file pw SHA256SUMS build-manifest.json\n  icos-sign verify --public-key release.pub release/\n\nA stock `minisign -Vm release/SHA256SUMS -p release.pub` checks the same signature."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a minisign key pair (password from --password-file or ICOS_SIGN_PASSWORD).
    #[command(
        after_help = "EXAMPLE:\n  icos-sign keygen --secret-key release.key --public-key release.pub --password-file pw.txt\n  icos-sign keygen --secret-key ci.key --public-key ci.pub --unencrypted"
    )]
    Keygen {
        /// Where to write the secret key (mode 0600).
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        /// Where to write the public key.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Read the password from the first line of FILE (else from ICOS_SIGN_PASSWORD).
        #[arg(long, value_name = "FILE", conflicts_with = "unencrypted")]
        password_file: Option<PathBuf>,
        /// Store the secret key without a password (like `minisign -G -W`).
        #[arg(long)]
        unencrypted: bool,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Sign files: writes FILE.minisig next to each FILE (deterministic, no timestamp).
    #[command(
        after_help = "EXAMPLE:\n  icos-sign sign --secret-key release.key --password-file pw.txt \\\n      release/SHA256SUMS release/build-manifest.json release/provenance.intoto.json release/sbom.spdx.json"
    )]
    Sign {
        /// The minisign secret key (ours or from `minisign -G`).
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        /// Read the key's password from the first line of FILE (else from ICOS_SIGN_PASSWORD).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// The files to sign.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Verify a release directory: exactly the release's regular files, every signature and hash,
    /// and a provenance and SBOM that describe this release.
    #[command(
        after_help = "EXAMPLE:\n  icos-sign verify --public-key release.pub release/\n\n\
Checks, without following symbolic links: SHA256SUMS (signature first, at most 1 MiB; a problem\n\
here stops the check), every file it lists and its hash, the build manifest naming exactly those\n\
files, provenance.intoto.json and sbom.spdx.json with valid signatures, the provenance's subjects\n\
equal to SHA256SUMS and the SBOM's root filesystem equal to the build manifest's rootfs tar, any\n\
other .minisig, and no other file. Prints at most 50 problems and their count; exits 1 on any."
    )]
    Verify {
        /// The release's minisign public key.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The release directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write SLSA v1 provenance (in-toto Statement v1) for the artifacts in SHA256SUMS.
    #[command(
        after_help = "EXAMPLE:\n  icos-sign provenance --build-manifest release/build-manifest.json --sums release/SHA256SUMS \\\n      --commit $(git rev-parse HEAD) --repo-uri git+https://example.org/ic-os.git \\\n      --out release/provenance.intoto.json"
    )]
    Provenance {
        /// The build manifest (icos.build-manifest/v1).
        #[arg(long, value_name = "FILE")]
        build_manifest: PathBuf,
        /// The SHA256SUMS of the artifacts (the provenance subjects).
        #[arg(long, value_name = "FILE")]
        sums: PathBuf,
        /// Full git commit id of the source.
        #[arg(long, value_name = "GIT_SHA")]
        commit: String,
        /// URI of the source repository.
        #[arg(long, value_name = "URI")]
        repo_uri: Option<String>,
        /// URI identifying the builder.
        #[arg(long, value_name = "URI")]
        builder_id: Option<String>,
        /// Where to write the provenance.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write an SPDX 2.3 JSON SBOM of the root filesystem and its Debian packages.
    #[command(
        after_help = "EXAMPLE:\n  icos-sign sbom --rootfs bazel-bin/ic-os/rootfs.tar --rootfs-manifest release/rootfs.manifest.json \\\n      --name default --out release/sbom.spdx.json\n  icos-sign sbom --rootfs rootfs.tar --rootfs-manifest rootfs.manifest.json --name debian \\\n      --base docker-archive:base.tar@sha256:… --out sbom.spdx.json"
    )]
    Sbom {
        /// The rootfs tar (streamed; checked against the manifest).
        #[arg(long, value_name = "FILE")]
        rootfs: PathBuf,
        /// The rootfs manifest (icos.rootfs-manifest/v1).
        #[arg(long, value_name = "FILE")]
        rootfs_manifest: PathBuf,
        /// Document and root package name (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// The pinned base the rootfs was built from (e.g. docker-archive:base.tar@sha256:…): each
        /// Debian package a later base layer added is annotated with that layer, and packages
        /// removed are annotated on the root filesystem.
        #[arg(long, value_name = "REFERENCE")]
        base: Option<String>,
        /// Platform picked when the base's digest names an index.
        #[arg(long, default_value = "linux/amd64")]
        platform: String,
        /// Where to write the SBOM.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the update manifest (icos.update-manifest/v1) of an update package: its size and
    /// sha256, each member's, the version and the new root's dm-verity root hash. A release signs
    /// it (`icos-sign sign`); a node's `icos-upgrade` trusts nothing of the package beyond it.
    #[command(
        after_help = "EXAMPLE:\n  icos-sign update-manifest --package update-img.tar.zst --uki icos_2.efi \\\n      --verity-params root.verity.json --image-id icos --version 2 --out update-manifest.json\n\n\
Reads the package as a node does (strict member list: uki.efi, root.img, root.verity) and checks\n\
that the UKI is the package's, and that its .osrel and .cmdline carry the same image id, version\n\
and root hash."
    )]
    UpdateManifest {
        /// The update package (update-img.tar.zst).
        #[arg(long, value_name = "FILE")]
        package: PathBuf,
        /// The UKI packed as uki.efi.
        #[arg(long, value_name = "FILE")]
        uki: PathBuf,
        /// The root's dm-verity parameters (icos.verity-params/v1).
        #[arg(long, value_name = "FILE")]
        verity_params: PathBuf,
        /// IMAGE_ID of the image.
        #[arg(long)]
        image_id: String,
        /// IMAGE_VERSION of the image.
        #[arg(long)]
        version: String,
        /// Where to write the manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen {
            secret_key,
            public_key,
            password_file,
            unencrypted,
            force,
        } => {
            icos_common::check_distinct(
                &[("--secret-key", &secret_key), ("--public-key", &public_key)],
                &password_file
                    .iter()
                    .map(|p| ("--password-file", p.as_path()))
                    .collect::<Vec<_>>(),
            )
            .map_err(anyhow::Error::msg)?;
            let protection =
                Protection::choose(Password::resolve(password_file.as_deref())?, unencrypted)?;
            let id = keygen(&secret_key, &public_key, &protection, force)?;
            println!(
                "key ID {id}: secret key {}, public key {}",
                secret_key.display(),
                public_key.display()
            );
        }
        Command::Sign {
            secret_key,
            password_file,
            files,
        } => {
            let password = Password::resolve(password_file.as_deref())?;
            let key = SigningKey::load(&secret_key, password.as_ref())?;
            for f in &files {
                let sig = sign_file(&key, f)?;
                println!("signed {} -> {}", f.display(), sig.display());
            }
        }
        Command::Verify { public_key, dir } => {
            let pk = PublicKey::load(&public_key)?;
            let v = verify_release(&dir, &pk)?;
            println!(
                "verified {}: {} files listed in SHA256SUMS, signed by key ID {}",
                dir.display(),
                v.listed.len(),
                v.key
            );
            println!("also signed: {}", v.signed.join(", "));
        }
        Command::Provenance {
            build_manifest,
            sums,
            commit,
            repo_uri,
            builder_id,
            out,
        } => {
            icos_common::check_distinct(
                &[("--out", &out)],
                &[("--build-manifest", &build_manifest), ("--sums", &sums)],
            )
            .map_err(anyhow::Error::msg)?;
            let req = ProvenanceRequest {
                build_manifest: &build_manifest,
                sums: &sums,
                commit: &commit,
                repo_uri: repo_uri.as_deref(),
                builder_id: builder_id.as_deref(),
            };
            write_provenance(&req, &out)?;
        }
        Command::Sbom {
            rootfs,
            rootfs_manifest,
            name,
            base,
            platform,
            out,
        } => {
            icos_common::check_distinct(
                &[("--out", &out)],
                &[
                    ("--rootfs", &rootfs),
                    ("--rootfs-manifest", &rootfs_manifest),
                ],
            )
            .map_err(anyhow::Error::msg)?;
            let layer_changes = match &base {
                Some(base) => icos_sign::layers::dpkg_layer_changes(base, &platform)?,
                None => Vec::new(),
            };
            write_sbom(
                &SbomRequest {
                    rootfs_tar: &rootfs,
                    rootfs_manifest: &rootfs_manifest,
                    name: &name,
                    layer_changes: &layer_changes,
                },
                &out,
            )?;
        }
        Command::UpdateManifest {
            package,
            uki,
            verity_params,
            image_id,
            version,
            out,
        } => {
            icos_common::check_distinct(
                &[("--out", &out)],
                &[
                    ("--package", &package),
                    ("--uki", &uki),
                    ("--verity-params", &verity_params),
                ],
            )
            .map_err(anyhow::Error::msg)?;
            let m =
                icos_update::make_manifest(&package, &uki, &verity_params, &image_id, &version)?;
            let mut f = icos_common::AtomicFile::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            f.file().write_all(&m.to_bytes())?;
            f.commit()
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icos-sign: error: {}", icos_tools::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
