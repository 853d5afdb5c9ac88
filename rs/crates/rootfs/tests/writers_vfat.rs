//! Randomized differential test of the FAT route: random trees whose names are biased towards
//! FAT's traps (names equal after case folding, literal 8.3 names equal to generated `~N`
//! aliases, non-ASCII letters, names near 255 UTF-16 units, paths near 259, trailing dots and
//! spaces) go layer tar → icos-rootfs → icos-vfat; the image must pass `fsck.fat -n`, and
//! mtools (`mdir -/ -b` and `mtype`, an independent FAT reader) must read back exactly the input
//! tree: names, byte for byte, and contents (a hardlink is a copy). A tree FAT cannot hold must be refused with
//! the expected error and no image.
//!
//! Cases: see `differential/mod.rs`. Shrunk failures are kept in
//! `writers_vfat.proptest-regressions` and as named tests at the end.

#[path = "differential/mod.rs"]
mod differential;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use differential::*;
use icos_common::SourceDateEpoch;
use proptest::prelude::*;
use proptest::sample::{select, Index};

#[derive(Clone, Debug)]
enum OpKind {
    Dir,
    File(usize),
    Hardlink(Index),
    /// FAT has no symlinks: the whole tree must be refused.
    Symlink,
}

/// Names that collide in FAT's eyes (case, and literal names equal to generated aliases) and
/// names that do not although they look alike (ß is not SS; ü and u differ).
const TRAPS: &[&str] = &[
    "readme.txt",
    "README.TXT",
    "ReadMe.txt",
    "LONGNA~1.TXT",
    "longname1.txt",
    "longname2.txt",
    "LONGNA~2.TXT",
    "longna~1.txt",
    "straße",
    "STRASSE",
    "É",
    "é",
    "ü",
    "u",
    "Ü",
    "a b",
    "A B",
    "EFI",
    "efi",
    "BOOTX64.EFI",
    "file.",
    "file ",
    " lead",
    "x.y.z",
    "NAME~1",
    "name~1",
];

fn name() -> impl Strategy<Value = String> {
    const CHARS: &[char] = &[
        'a', 'B', 'c', '~', '1', '.', ' ', 'é', 'É', 'ß', 'ü', '+', '_',
    ];
    prop_oneof![
        5 => select(TRAPS).prop_map(str::to_string),
        4 => prop::collection::vec(select(CHARS), 1..=12).prop_map(|c| c.into_iter().collect()),
        1 => (250..=257usize, select(vec!['a', 'B', 'é'])).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
    .prop_map(|s: String| if s.chars().all(|c| c == '.') { format!("d{s}") } else { s })
}

fn op() -> impl Strategy<Value = (Index, String, OpKind, u64)> {
    let kind = prop_oneof![
        4 => Just(OpKind::Dir),
        6 => prop_oneof![0..=2usize, 511..=513usize, 4095..=4097usize, 0..100_000usize].prop_map(OpKind::File),
        2 => any::<Index>().prop_map(OpKind::Hardlink),
        1 => Just(OpKind::Symlink),
    ];
    (any::<Index>(), name(), kind, any::<u64>())
}

fn tree() -> impl Strategy<Value = Vec<Node>> {
    (
        prop::collection::vec(op(), 0..=24),
        prop_oneof![Just(0usize), 0..=30usize],
    )
        .prop_map(|(ops, depth)| {
            let mut nodes: Vec<Node> = Vec::new();
            let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
            let mut paths = BTreeSet::new();
            let join = |d: &[u8], n: &[u8]| {
                if d.is_empty() {
                    n.to_vec()
                } else {
                    [d, b"/", n].concat()
                }
            };
            let node = |path: Vec<u8>, kind: Kind| Node {
                path,
                kind,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: EPOCH - 1,
                xattrs: Vec::new(),
            };
            // Deep nesting, towards FAT's 259-unit path limit (8 units per level).
            for _ in 0..depth {
                let p = join(dirs.last().unwrap(), b"nested7");
                paths.insert(p.clone());
                nodes.push(node(p.clone(), Kind::Dir));
                dirs.push(p);
            }
            for (parent, name, kind, seed) in ops {
                let p = join(&dirs[parent.index(dirs.len())], name.as_bytes());
                if !paths.insert(p.clone()) {
                    continue;
                }
                let kind = match kind {
                    OpKind::Dir => {
                        dirs.push(p.clone());
                        Kind::Dir
                    }
                    OpKind::File(len) => Kind::File {
                        len,
                        seed,
                        zero_block: seed % 2 == 0,
                    },
                    OpKind::Symlink => Kind::Symlink(b"target".to_vec()),
                    OpKind::Hardlink(i) => {
                        let files: Vec<usize> = (0..nodes.len())
                            .filter(|&j| matches!(nodes[j].kind, Kind::File { .. }))
                            .collect();
                        if files.is_empty() {
                            Kind::File {
                                len: 3,
                                seed,
                                zero_block: false,
                            }
                        } else {
                            Kind::Hardlink(files[i.index(files.len())])
                        }
                    }
                };
                nodes.push(node(p, kind));
            }
            nodes
        })
}

/// FAT's case folding for the generator's alphabet, written out (not the writer's table): ASCII
/// letters and the Latin-1 letters used here map to upper case; ß has no one-unit upper case.
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'é' => 'É',
            'ü' => 'Ü',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Why FAT cannot hold the tree (any of these is an acceptable refusal), or empty.
fn expected_refusals(nodes: &[Node]) -> Vec<&'static str> {
    let mut why = Vec::new();
    let mut folded: BTreeMap<(Vec<u8>, String), usize> = BTreeMap::new();
    for n in nodes {
        let path = String::from_utf8(n.path.clone()).unwrap();
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if matches!(n.kind, Kind::Symlink(_)) {
            why.push("holds only directories and regular files");
        }
        if name.ends_with('.') || name.ends_with(' ') {
            why.push("ending in a dot or space");
        }
        if name.encode_utf16().count() > 255 {
            why.push("longer than 255 UTF-16 units");
        }
        // A `\` before each component, from the root.
        let units: usize = path.split('/').map(|c| 1 + c.encode_utf16().count()).sum();
        if units > 259 {
            why.push("UTF-16 units, more than FAT's");
        }
        let key = (parent.as_bytes().to_vec(), fold(name));
        if folded.insert(key, 0).is_some() {
            why.push("differ only in letter case");
        }
    }
    why
}

proptest! {
    #![proptest_config(config(DEFAULT_CASES))]
    #[test]
    fn fat_images_hold_the_input_tree(nodes in tree()) {
        if let Err(why) = check(&nodes) {
            prop_assert!(false, "{why}");
        }
    }
}

fn check(nodes: &[Node]) -> Result<(), String> {
    if !have_tool("fsck.fat", "dosfstools") || !have_tool("mdir", "mtools") {
        return Ok(());
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("esp.img");
    let data: usize = nodes
        .iter()
        .enumerate()
        .map(|(i, _)| match nodes[resolve(nodes, i)].kind {
            Kind::File { len, .. } => len + 4096,
            _ => 4096,
        })
        .sum();
    let size = (64 << 20) + 2 * data as u64;
    let size = size.div_ceil(512) * 512;
    let built = flatten(dir.path(), &layer_tar(nodes))
        .map_err(|e| e.to_string())
        .and_then(|tar| {
            let opts = icos_vfat::VfatOptions {
                size,
                seed: "differential".into(),
                label: "ESP".into(),
                source_date_epoch: SourceDateEpoch(EPOCH),
            };
            icos_vfat::build_vfat(&tar, &img, &opts).map_err(|e| e.to_string())
        })
        .map(|_| ());
    let expected = expected_refusals(nodes);
    if !verdict(built, &expected, &img)? {
        return Ok(());
    }
    let (ok, out) = run(Command::new("fsck.fat").arg("-n").arg(&img));
    if !ok {
        return Err(format!("fsck.fat -n fails:\n{out}"));
    }
    compare(nodes, &img)
}

/// An mtools command on the image (C.UTF-8: long names as UTF-8); its stdout.
fn mtools(program: &str, args: &[&str], img: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(program)
        .args(args)
        .arg("-i")
        .arg(img)
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?} fails: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// The image as mtools reads it against the model: every path (`mdir -/ -b`; not `mcopy -s`,
/// since a FAT name of 255 UTF-16 units can be 510 UTF-8 bytes, more than a Linux name holds)
/// and every file's bytes (`mtype`).
fn compare(nodes: &[Node], img: &Path) -> Result<(), String> {
    let mut want: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let path = String::from_utf8(n.path.clone()).unwrap();
        let data = match nodes[resolve(nodes, i)].kind {
            Kind::File {
                len,
                seed,
                zero_block,
            } => Some(content(seed, len, zero_block)),
            _ => None,
        };
        want.insert(path, data);
    }
    // mdir reports an empty root as "not found".
    let listing = if want.is_empty() {
        Vec::new()
    } else {
        mtools("mdir", &["-/", "-b", "::/"], img)?
    };
    let got: BTreeSet<String> = String::from_utf8(listing)
        .map_err(|e| format!("mdir printed no UTF-8: {e}"))?
        .lines()
        .filter_map(|l| l.strip_prefix("::/"))
        .map(|l| l.trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let w: BTreeSet<String> = want.keys().cloned().collect();
    if got != w {
        return Err(format!(
            "mdir lists other names: only in the image {:?}, only in the tree {:?}",
            got.difference(&w).collect::<Vec<_>>(),
            w.difference(&got).collect::<Vec<_>>()
        ));
    }
    for (path, data) in &want {
        if let Some(data) = data {
            let read = mtools("mtype", &[&format!("::/{path}")], img)?;
            if &read != data {
                return Err(format!(
                    "{path}: contents differ ({} bytes read, {} written)",
                    read.len(),
                    data.len()
                ));
            }
        }
    }
    Ok(())
}

fn named(path: &str, kind: Kind) -> Node {
    Node {
        path: path.as_bytes().to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: EPOCH - 1,
        xattrs: Vec::new(),
    }
}

// Found by the generator (shrunk to a directory ".a"): fatfs made the short name ".A" (an empty
// base), which fsck.fat rejects as a bad short name. Names whose only dot leads now get an alias
// with a base; the long name is kept.
#[test]
fn names_starting_with_a_dot_get_valid_short_names() {
    let file = |seed| Kind::File {
        len: 5,
        seed,
        zero_block: false,
    };
    let nodes = vec![
        named(".a", Kind::Dir),
        named(".a/.profile", file(1)),
        named(".a/..b", file(2)),
        named(".a/.c.d", file(3)),
        named(".bashrc", file(4)),
        named("+a", file(5)),
    ];
    assert_eq!(check(&nodes), Ok(()));
}
