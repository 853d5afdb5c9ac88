//! The public entry point: layers in, spec applied, one tar and one manifest out.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use flate2::read::MultiGzDecoder;
use icos_common::mapped::{MappedBytes, MappedFile};
use icos_common::sparse::SparseWriter;
use icos_common::{AtomicFile, HashingReader, SourceDateEpoch};

use crate::error::{EntryProblem, RootfsError};
use crate::manifest::{
    BaseInput, FileInput, Inputs, Manifest, ManifestOut, OutputInfo, SpecInput, ToolInfo, SCHEMA,
    TOOL_NAME,
};
use crate::source::open_confined;
use crate::spec::{Content, ImageSpec, Owner};
use crate::tree::{Kind, Meta, Node, Tree};
use crate::{layer, writer};

/// A layer's verification: checks the mapped bytes against the layer's digest.
type Verify = Box<dyn FnOnce() -> io::Result<()> + Send>;

/// One thread, whatever the number of layers, verifying them in order until one fails.
struct Verifier {
    queue: Sender<(String, Verify)>,
    thread: JoinHandle<Result<(), RootfsError>>,
}

impl Verifier {
    fn start() -> Verifier {
        let (queue, layers) = mpsc::channel::<(String, Verify)>();
        let thread = std::thread::Builder::new()
            .name("verify layers".into())
            .spawn(move || {
                for (layer, verify) in layers {
                    verify().map_err(|source| RootfsError::LayerRead {
                        layer,
                        context: "cannot verify the layer".to_string(),
                        source,
                    })?;
                }
                Ok(())
            })
            .expect("cannot start a thread");
        Verifier { queue, thread }
    }
}

/// Builds one rootfs: apply base layers in order with [`RootfsBuilder::apply_layer`], then the
/// image's own changes with [`RootfsBuilder::apply_spec`], then [`RootfsBuilder::write`].
pub struct RootfsBuilder {
    tree: Tree,
    epoch: SourceDateEpoch,
    spec: Option<SpecInput>,
    files: BTreeMap<String, FileInput>,
    extra_layers: Vec<FileInput>,
    unmatched_removals: Vec<String>,
    /// The thread that checks the digests of layers mapped in place, one after the other, while
    /// the build goes on: nothing is committed before they all passed.
    verifier: Option<Verifier>,
}

/// What a successful build wrote: the manifest file says the rest (its entries are written as they
/// are produced, never all held at once).
#[derive(Debug)]
pub struct BuildReport {
    pub inputs: Inputs,
    pub output: OutputInfo,
    /// The number of entries in the tar (and in the manifest).
    pub entries: usize,
    /// `remove` patterns of the spec that matched nothing (not an error; worth a warning).
    pub unmatched_removals: Vec<String>,
}

impl RootfsBuilder {
    /// `spool_dir` holds the one anonymous temporary file for file contents while the tree is
    /// built: pass the output directory (same filesystem, no data written anywhere else).
    pub fn new(spool_dir: &Path, epoch: SourceDateEpoch) -> Result<Self, RootfsError> {
        let tree = Tree::new(spool_dir, epoch.seconds()).map_err(|source| RootfsError::Io {
            context: "cannot create the temporary content spool in",
            path: spool_dir.to_path_buf(),
            source,
        })?;
        Ok(RootfsBuilder {
            tree,
            epoch,
            spec: None,
            files: BTreeMap::new(),
            extra_layers: Vec::new(),
            unmatched_removals: Vec::new(),
            verifier: None,
        })
    }

    /// Applies one uncompressed layer tar stream on top of everything applied so far.
    /// `name` identifies the layer in errors, e.g. `layer 2 (sha256:…) of oci:…`.
    /// The stream is read to its end (a verifying reader checks its digest there).
    pub fn apply_layer(&mut self, name: &str, mut layer: impl Read) -> Result<(), RootfsError> {
        let applied = layer::apply(&mut self.tree, name, &mut layer);
        self.or_verify_error(applied)
    }

    /// Applies one uncompressed layer mapped in place (see `icos_oci::Image::map_layer`): file
    /// contents stay in the mapping until the tar is written, instead of being copied to the
    /// spool. `verify` checks the bytes against the layer's digest. It runs on another core while
    /// the build goes on, and the build waits for it before anything is committed. Its error wins
    /// over any later one: a corrupt layer is reported as corrupt, not as whatever its bytes
    /// happen to look like.
    pub fn apply_mapped_layer(
        &mut self,
        name: &str,
        bytes: MappedBytes,
        verify: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> Result<(), RootfsError> {
        let verifier = self.verifier.get_or_insert_with(Verifier::start);
        // A closed queue means an earlier layer failed: that error comes out of finish_verifying.
        let _ = verifier.queue.send((name.to_string(), Box::new(verify)));
        let applied = layer::apply_mapped(&mut self.tree, name, bytes);
        self.or_verify_error(applied)
    }

    /// Waits for the layers still being verified; the first failure, in layer order. The builder
    /// calls it before any error and before committing; a caller whose own step failed calls it
    /// to report a corrupt earlier layer first.
    pub fn finish_verifying(&mut self) -> Result<(), RootfsError> {
        let Some(Verifier { queue, thread }) = self.verifier.take() else {
            return Ok(());
        };
        drop(queue); // the thread ends after the last layer queued
        thread.join().expect("the verifying thread panicked")
    }

    /// `result`, unless a layer failed its verification: that is the error then.
    fn or_verify_error<T>(&mut self, result: Result<T, RootfsError>) -> Result<T, RootfsError> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => Err(self.finish_verifying().err().unwrap_or(error)),
        }
    }

    /// Applies the spec: extra layers, then removals, then dirs, files and symlinks.
    pub fn apply_spec(&mut self, spec: &ImageSpec) -> Result<(), RootfsError> {
        let applied = self.apply_spec_unverified(spec);
        self.or_verify_error(applied)
    }

    fn apply_spec_unverified(&mut self, spec: &ImageSpec) -> Result<(), RootfsError> {
        let spec_path = spec.path.to_string_lossy().into_owned();
        self.spec = Some(SpecInput {
            path: spec_path.clone(),
            sha256: spec.sha256,
        });
        let spec_error = |problem: String| RootfsError::Spec {
            path: spec.path.clone(),
            problem,
        };

        for source in &spec.layers {
            let name = format!("extra layer {:?} of {}", source.name, spec_path);
            let layer_error =
                |e: String| spec_error(format!("[[layer]] source {:?}: {e}", source.name));
            let file = open_confined(source, &spec.source_roots).map_err(layer_error)?;
            let (sha256, size) = if let Some(compression) = compression_of(&source.name) {
                self.apply_compressed_extra_layer(&name, compression, file, &layer_error)?
            } else {
                // Uncompressed: read in place.
                let bytes = MappedFile::new(file)
                    .map_err(|e| {
                        layer_error(format!("cannot map {}: {e}", source.resolved.display()))
                    })?
                    .whole();
                let size = bytes.len() as u64;
                // Its digest is recorded (there is none to check): hashed on a second core while
                // this one parses.
                let (sha256, applied) = std::thread::scope(|scope| {
                    let hasher = scope.spawn(|| bytes.sha256());
                    let applied = layer::apply_mapped(&mut self.tree, &name, bytes.clone());
                    (hasher.join().expect("the hashing thread panicked"), applied)
                });
                applied?;
                (sha256, size)
            };
            self.extra_layers.push(FileInput {
                path: source.name.clone(),
                sha256,
                size,
            });
        }

        self.apply_removals(spec)?;

        self.tree.begin_step();
        let epoch = self.epoch.seconds();
        let meta_of = |owner: &Owner| {
            Meta::new(
                owner.mode,
                owner.uid,
                owner.gid,
                epoch,
                owner.xattrs.clone(),
            )
        };
        for dir in &spec.dirs {
            self.tree
                .put(&dir.path, Kind::Dir, meta_of(&dir.owner))
                .map_err(|p| spec_error(format!("{}: {}", dir.label, describe(&p))))?;
        }
        for file in &spec.files {
            self.make_room(&file.path)
                .map_err(|p| spec_error(format!("{}: {p}", file.label)))?;
            let inode = match &file.content {
                Content::Inline(text) => self
                    .tree
                    .spool_file(
                        &mut text.as_bytes(),
                        text.len() as u64,
                        meta_of(&file.owner),
                    )
                    .map_err(|e| {
                        spec_error(format!("{}: cannot spool the content: {e}", file.label))
                    })?
                    .expect("in-memory content is complete"),
                Content::Source(source) => {
                    let inode =
                        self.spool_source(&file.label, source, meta_of(&file.owner), spec)?;
                    self.files.insert(
                        source.name.clone(),
                        FileInput {
                            path: source.name.clone(),
                            sha256: self.tree.digests[inode],
                            size: self.tree.inodes[inode].size,
                        },
                    );
                    inode
                }
            };
            self.tree
                .put(&file.path, Kind::File(inode), Meta::default())
                .map_err(|p| spec_error(format!("{}: {}", file.label, describe(&p))))?;
        }
        for link in &spec.symlinks {
            self.make_room(&link.path)
                .map_err(|p| spec_error(format!("{}: {p}", link.label)))?;
            let meta = Meta::new(0o777, link.uid, link.gid, epoch, Default::default());
            self.tree
                .put(&link.path, Kind::Symlink(link.target.as_str().into()), meta)
                .map_err(|p| spec_error(format!("{}: {}", link.label, describe(&p))))?;
        }
        Ok(())
    }

    /// Streams a compressed extra layer through its decompressor; returns the file's digest and
    /// size (of every byte, including any after the compressed stream).
    fn apply_compressed_extra_layer(
        &mut self,
        name: &str,
        compression: Compression,
        file: std::fs::File,
        layer_error: &dyn Fn(String) -> RootfsError,
    ) -> Result<(icos_common::Digest, u64), RootfsError> {
        let mut hashing = HashingReader::new(file);
        {
            let stream: Box<dyn Read + '_> = match compression {
                Compression::Gzip => Box::new(MultiGzDecoder::new(&mut hashing)),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::new(&mut hashing)
                        .map_err(|e| layer_error(e.to_string()))?,
                ),
            };
            self.apply_layer(name, stream)?;
        }
        // Hash the whole file, including bytes after the compressed stream.
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| layer_error(format!("cannot read it: {e}")))?;
        Ok(hashing.finish())
    }

    /// A file or symlink may replace anything but a directory that still has children.
    fn make_room(&mut self, path: &str) -> Result<(), String> {
        if let Some(Node {
            kind: Kind::Dir, ..
        }) = self.tree.nodes.get(path)
        {
            if self.tree.has_children(path) {
                return Err(format!(
                    "/{path} is a non-empty directory in the layers; remove its contents first (remove = [\"/{path}/**\"]) or choose another path"
                ));
            }
        }
        Ok(())
    }

    fn spool_source(
        &mut self,
        label: &str,
        source: &crate::spec::SpecSource,
        meta: Meta,
        spec: &ImageSpec,
    ) -> Result<usize, RootfsError> {
        let spec_error = |problem: String| RootfsError::Spec {
            path: spec.path.clone(),
            problem,
        };
        // Follows symlinks within the source roots: Bazel stages inputs as symlinks.
        let mut file = open_confined(source, &spec.source_roots)
            .map_err(|e| spec_error(format!("{label}: source {:?}: {e}", source.name)))?;
        let metadata = file.metadata().map_err(|e| {
            spec_error(format!(
                "{label}: cannot stat source {}: {e}",
                source.resolved.display()
            ))
        })?;
        let expected = metadata.len();
        match self.tree.spool_file(&mut file, expected, meta) {
            Ok(Ok(inode)) => Ok(inode),
            Ok(Err(got)) => Err(spec_error(format!(
                "{label}: source {} changed while it was read ({expected} bytes expected, {got} read)",
                source.resolved.display()
            ))),
            Err(e) => Err(spec_error(format!("{label}: cannot read source {}: {e}", source.resolved.display()))),
        }
    }

    fn apply_removals(&mut self, spec: &ImageSpec) -> Result<(), RootfsError> {
        let mut matched = vec![false; spec.remove.len()];
        let mut doomed: Vec<String> = Vec::new();
        let mut hits = Vec::new();
        for path in self.tree.nodes.keys().skip(1) {
            spec.remove_set.matches_into(format!("/{path}"), &mut hits);
            if !hits.is_empty() {
                for &i in &hits {
                    matched[i] = true;
                }
                // Sorted order: a removed directory precedes its subtree, which goes with it.
                if !doomed.last().is_some_and(|d| {
                    path.starts_with(d.as_str()) && path.as_bytes().get(d.len()) == Some(&b'/')
                }) {
                    doomed.push(path.to_string());
                }
            }
        }
        for path in &doomed {
            self.tree.remove_subtree(path, true, None);
        }
        self.unmatched_removals = spec
            .remove
            .iter()
            .zip(&matched)
            .filter(|(_, &m)| !m)
            .map(|(p, _)| p.clone())
            .collect();
        Ok(())
    }

    /// Writes the normalized tar to `out` and returns the manifest describing it (held in memory
    /// whole: [`RootfsBuilder::write`] streams it to a file instead).
    pub fn write_to(
        &mut self,
        out: impl Write + Send,
        base: Option<BaseInput>,
    ) -> Result<Manifest, RootfsError> {
        let written = self.write_tar(out).map_err(|source| RootfsError::Io {
            context: "cannot write",
            path: PathBuf::from("the output"),
            source,
        });
        let (output, _) = self.or_verify_error(written)?;
        self.finish_verifying()?;
        self.check_sources_unchanged()?;
        Ok(Manifest {
            schema: SCHEMA.to_string(),
            tool: tool_info(),
            source_date_epoch: self.epoch.seconds(),
            inputs: self.inputs(base),
            output,
            entries: writer::manifest_entries(&self.tree),
        })
    }

    /// Writes the tar, hashing it on the way; returns its digest and size, and its entry count.
    /// The files still in mapped layers are hashed meanwhile, for the manifest.
    fn write_tar(&mut self, out: impl Write + Send) -> io::Result<(OutputInfo, usize)> {
        let mut digests = std::mem::take(&mut self.tree.digests);
        let tree = &self.tree;
        let written = std::thread::scope(|scope| {
            let hasher = std::thread::Builder::new()
                .name("hash files".into())
                .spawn_scoped(scope, || tree.hash_mapped_files(&mut digests))
                .expect("cannot start a thread");
            // Hashed on this core while another writes: contents mapped in place are never
            // copied in user space (see icos_common::write_behind).
            let written = icos_common::write_behind(out, |sink| writer::write_tar(tree, sink));
            hasher.join().expect("the hashing thread panicked");
            written
        });
        self.tree.digests = digests;
        let (entries, _, sha256, size) = written?;
        Ok((OutputInfo { sha256, size }, entries))
    }

    /// The tripwire: no layer read in place was written during the build.
    fn check_sources_unchanged(&self) -> Result<(), RootfsError> {
        self.tree
            .check_sources_unchanged()
            .map_err(|(layer, source)| RootfsError::LayerRead {
                layer,
                context: "cannot trust the layer read in place".to_string(),
                source,
            })
    }

    fn inputs(&self, base: Option<BaseInput>) -> Inputs {
        Inputs {
            base,
            spec: self.spec.clone(),
            files: self.files.values().cloned().collect(),
            extra_layers: self.extra_layers.clone(),
        }
    }

    /// Writes the rootfs tar and its manifest. Both appear under their final names only if the
    /// whole build succeeds.
    pub fn write(
        mut self,
        tar_path: &Path,
        manifest_path: &Path,
        base: Option<BaseInput>,
    ) -> Result<BuildReport, RootfsError> {
        let io_error = |context: &'static str, path: &Path| {
            let path: PathBuf = path.to_path_buf();
            move |source| RootfsError::Io {
                context,
                path,
                source,
            }
        };
        let mut tar_file =
            AtomicFile::create(tar_path).map_err(io_error("cannot create", tar_path))?;
        // All-zero 4 KiB blocks stay holes: a 3 GiB file of zeros costs no 3 GiB of disk, and
        // the bytes read back are the same.
        let mut sparse = SparseWriter::new(tar_file.file());
        let written = self
            .write_tar(&mut sparse)
            .and_then(|written| sparse.finish().map(|_| written))
            .map_err(io_error("cannot write", tar_path));
        let (output, entries) = self.or_verify_error(written)?;
        self.finish_verifying()?;
        self.check_sources_unchanged()?;
        let inputs = self.inputs(base);
        let mut manifest_file =
            AtomicFile::create(manifest_path).map_err(io_error("cannot create", manifest_path))?;
        let manifest = ManifestOut {
            schema: SCHEMA,
            tool: &tool_info(),
            source_date_epoch: self.epoch.seconds(),
            inputs: &inputs,
            output: &output,
            entries: writer::ManifestEntries(&self.tree),
        };
        let mut json = BufWriter::with_capacity(1 << 20, manifest_file.file());
        serde_json::to_writer_pretty(&mut json, &manifest)
            .map_err(io::Error::from)
            .and_then(|()| json.write_all(b"\n"))
            .and_then(|()| json.flush())
            .map_err(io_error("cannot write", manifest_path))?;
        drop(json);
        tar_file
            .commit()
            .map_err(io_error("cannot write", tar_path))?;
        if let Err(source) = manifest_file.commit() {
            // Never leave a tar without its manifest.
            let _ = std::fs::remove_file(tar_path);
            return Err(RootfsError::Io {
                context: "cannot write",
                path: manifest_path.to_path_buf(),
                source,
            });
        }
        Ok(BuildReport {
            inputs,
            output,
            entries,
            unmatched_removals: self.unmatched_removals,
        })
    }
}

fn tool_info() -> ToolInfo {
    ToolInfo {
        name: TOOL_NAME.to_string(),
        version: icos_common::TOOLS_VERSION.to_string(),
    }
}

fn describe(problem: &EntryProblem) -> String {
    problem.to_string()
}

#[derive(Clone, Copy)]
enum Compression {
    Gzip,
    Zstd,
}

/// Extra layers may be compressed; the file name says how (None: a plain tar).
fn compression_of(name: &str) -> Option<Compression> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".tgz") {
        Some(Compression::Gzip)
    } else if lower.ends_with(".zst") || lower.ends_with(".tzst") {
        Some(Compression::Zstd)
    } else {
        None
    }
}
