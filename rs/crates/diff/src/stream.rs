//! Lockstep comparison of the members of two packages, region by region, without materialising
//! either image: both streams are decoded side by side and holes are compared as zeros without
//! being expanded. Every differing byte is found: the differing runs of each region are recorded
//! (the first [`MAX_RUNS`] of them; all are counted), and windows of each side (a partition image,
//! a whole disk) are hashed on the way, so manifests can be checked against the bytes.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use icos_common::Digest;

use crate::package::{MemberReader, Package, Piece};
use crate::rootfs::Side as WhichSide;
use crate::DiffError;

/// How much of each member is read before the regions are planned (GPT lives here).
pub const HEAD: u64 = 1 << 20;
/// How much of the start of a region is kept (from side A) when the region is marked `capture`.
pub const CAPTURE: u64 = 1 << 20;
/// How many differing runs of a region are kept (all are counted).
pub const MAX_RUNS: usize = 10_000;

/// What a region of a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    ProtectiveMbr,
    GptHeader,
    GptEntries,
    Partition,
    BackupGptEntries,
    BackupGptHeader,
    Unpartitioned,
    /// The whole member (a filesystem image, or a disk without a GPT).
    Whole,
}

/// A byte range of a member, as planned before the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    pub name: String,
    pub kind: RegionKind,
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    /// Keep the first [`CAPTURE`] bytes of side A (to parse a filesystem later).
    pub capture: bool,
}

/// A byte range of one side's member to hash (a partition image, the whole disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub side: WhichSide,
    pub label: String,
    pub start: u64,
    /// Exclusive.
    pub end: u64,
}

/// A region after the comparison.
#[derive(Clone, Debug)]
pub struct RegionResult {
    pub spec: RegionSpec,
    /// Member offsets `[start, end)` of the differing runs, in order: the first [`MAX_RUNS`].
    pub runs: Vec<(u64, u64)>,
    /// How many differing runs there are in all.
    pub run_count: u64,
    /// How many bytes differ in all.
    pub diff_bytes: u64,
    /// The first bytes of the region in A, when `capture` was asked for.
    pub head_a: Vec<u8>,
}

impl RegionResult {
    /// Member offset of the first differing byte.
    pub fn first_diff(&self) -> Option<u64> {
        self.runs.first().map(|r| r.0)
    }
}

/// A window after the comparison.
#[derive(Clone, Debug)]
pub struct WindowResult {
    pub window: Window,
    pub digest: Digest,
    /// False when the member ended before the window did.
    pub complete: bool,
}

/// One member present in both packages.
#[derive(Clone, Debug)]
pub struct MemberResult {
    pub name: String,
    pub size_a: u64,
    pub size_b: u64,
    pub regions: Vec<RegionResult>,
    pub windows: Vec<WindowResult>,
}

impl MemberResult {
    pub fn differs(&self) -> bool {
        self.size_a != self.size_b || self.regions.iter().any(|r| r.run_count > 0)
    }
}

#[derive(Clone, Debug)]
pub enum MemberOutcome {
    Compared(MemberResult),
    OnlyIn { name: String, side: WhichSide },
}

/// The regions of one member, and the windows of each side to hash.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Sorted, not overlapping; regions past the member's end are dropped, overlaps clipped;
    /// gaps between them become [`RegionKind::Unpartitioned`] regions.
    pub regions: Vec<RegionSpec>,
    pub windows: Vec<Window>,
}

/// Decides the regions of a member from its name, its size in A and its first bytes in A
/// (at most [`HEAD`]).
pub type Planner<'p> = dyn FnMut(&str, u64, &[u8]) -> Plan + 'p;

/// Compares every member of packages `a` and `b` in archive order.
pub fn compare_packages(
    a: &Path,
    b: &Path,
    planner: &mut Planner<'_>,
) -> Result<Vec<MemberOutcome>, DiffError> {
    let mut pa = Package::open(a)?;
    let mut pb = Package::open(b)?;
    let mut ma = pa.members()?;
    let mut mb = pb.members()?;
    let mut out = Vec::new();
    loop {
        match (ma.next_member()?, mb.next_member()?) {
            (None, None) => break,
            (Some(x), None) => out.push(MemberOutcome::OnlyIn {
                name: x.name().to_string(),
                side: WhichSide::A,
            }),
            (None, Some(y)) => out.push(MemberOutcome::OnlyIn {
                name: y.name().to_string(),
                side: WhichSide::B,
            }),
            (Some(x), Some(y)) if x.name() != y.name() => {
                // Members are matched by position; a different name means the member lists diverge.
                out.push(MemberOutcome::OnlyIn {
                    name: x.name().to_string(),
                    side: WhichSide::A,
                });
                out.push(MemberOutcome::OnlyIn {
                    name: y.name().to_string(),
                    side: WhichSide::B,
                });
            }
            (Some(x), Some(y)) => {
                out.push(MemberOutcome::Compared(compare_members(x, y, planner)?))
            }
        }
    }
    Ok(out)
}

const BUF: usize = 256 << 10;

enum Pend {
    Empty,
    Zeros(u64),
    Data { start: usize, end: usize },
    End,
}

struct Reader<'a> {
    r: MemberReader<'a>,
    buf: Vec<u8>,
    pend: Pend,
}

#[derive(Clone, Copy)]
enum Span<'s> {
    Zeros,
    Data(&'s [u8]),
}

impl<'s> Span<'s> {
    fn sub(self, off: u64, len: u64) -> Span<'s> {
        match self {
            Span::Zeros => Span::Zeros,
            Span::Data(d) => Span::Data(&d[off as usize..(off + len) as usize]),
        }
    }
}

impl<'a> Reader<'a> {
    fn new(r: MemberReader<'a>) -> Self {
        Reader {
            r,
            buf: vec![0; BUF],
            pend: Pend::Empty,
        }
    }

    /// Bytes available now (`None` at the end).
    fn avail(&mut self) -> Result<Option<u64>, DiffError> {
        if let Pend::Empty = self.pend {
            self.pend = match self.r.next_piece(&mut self.buf)? {
                Piece::Data(n) => Pend::Data { start: 0, end: n },
                Piece::Zeros(n) => Pend::Zeros(n),
                Piece::End => Pend::End,
            };
        }
        Ok(match self.pend {
            Pend::Zeros(n) => Some(n),
            Pend::Data { start, end } => Some((end - start) as u64),
            Pend::End => None,
            Pend::Empty => unreachable!("filled above"),
        })
    }

    fn span(&self) -> Span<'_> {
        match self.pend {
            Pend::Data { start, end } => Span::Data(&self.buf[start..end]),
            _ => Span::Zeros,
        }
    }

    fn consume(&mut self, n: u64) {
        self.pend = match self.pend {
            Pend::Zeros(z) if z > n => Pend::Zeros(z - n),
            Pend::Data { start, end } if end - start > n as usize => Pend::Data {
                start: start + n as usize,
                end,
            },
            Pend::End => Pend::End,
            _ => Pend::Empty,
        };
    }

    /// Reads up to `n` bytes into memory (zeros materialised): for the head only.
    fn read_head(&mut self, n: u64) -> Result<Vec<u8>, DiffError> {
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u64) < n {
            let Some(k) = self.avail()? else { break };
            let k = k.min(n - out.len() as u64);
            match self.span() {
                Span::Zeros => out.resize(out.len() + k as usize, 0),
                Span::Data(d) => out.extend_from_slice(&d[..k as usize]),
            }
            self.consume(k);
        }
        Ok(out)
    }
}

/// Appends the differing runs of `a` and `b` (`n` bytes at member offset `pos`) to `out`.
fn diff_runs(pos: u64, a: Span<'_>, b: Span<'_>, n: u64, out: &mut impl FnMut(u64, u64)) {
    let scan = |base: u64, x: &[u8], y: Option<&[u8]>, out: &mut dyn FnMut(u64, u64)| {
        let differs = |i: usize| match y {
            Some(y) => x[i] != y[i],
            None => x[i] != 0,
        };
        let mut i = 0;
        while i < x.len() {
            if !differs(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < x.len() && differs(i) {
                i += 1;
            }
            out(base + start as u64, base + i as u64);
        }
    };
    match (a, b) {
        (Span::Zeros, Span::Zeros) => {}
        (Span::Zeros, Span::Data(d)) | (Span::Data(d), Span::Zeros) => {
            let d = &d[..n as usize];
            for (k, c) in d.chunks(4096).enumerate() {
                if c.iter().any(|&x| x != 0) {
                    scan(pos + (k * 4096) as u64, c, None, out);
                }
            }
        }
        (Span::Data(x), Span::Data(y)) => {
            let (x, y) = (&x[..n as usize], &y[..n as usize]);
            for (k, (cx, cy)) in x.chunks(4096).zip(y.chunks(4096)).enumerate() {
                if cx != cy {
                    scan(pos + (k * 4096) as u64, cx, Some(cy), out);
                }
            }
        }
    }
}

struct Tracker {
    regions: Vec<RegionResult>,
}

impl Tracker {
    fn new(plan_regions: Vec<RegionSpec>, size: u64) -> Self {
        let mut regions = Vec::new();
        let mut at = 0;
        let result = |spec| RegionResult {
            spec,
            runs: Vec::new(),
            run_count: 0,
            diff_bytes: 0,
            head_a: Vec::new(),
        };
        for s in plan_regions {
            let (start, end) = (s.start.max(at).min(size), s.end.min(size));
            if start >= end {
                continue;
            }
            if start > at {
                regions.push(result(gap(at, start)));
            }
            regions.push(result(RegionSpec { start, end, ..s }));
            at = end;
        }
        if at < size {
            regions.push(result(gap(at, size)));
        }
        Tracker { regions }
    }

    fn capture(&mut self, pos: u64, a: Span<'_>, n: u64) {
        for r in self.regions.iter_mut().filter(|r| r.spec.capture) {
            let want_end = r.spec.start + CAPTURE.min(r.spec.end - r.spec.start);
            let have = r.spec.start + r.head_a.len() as u64;
            let (from, to) = (pos.max(have), (pos + n).min(want_end));
            if from != have || from >= to {
                continue;
            }
            match a.sub(from - pos, to - from) {
                Span::Zeros => r.head_a.resize(r.head_a.len() + (to - from) as usize, 0),
                Span::Data(d) => r.head_a.extend_from_slice(d),
            }
        }
    }

    /// Records the differing run `[start, end)`, split at region boundaries.
    fn record(&mut self, mut start: u64, end: u64) {
        while start < end {
            let i = self.regions.partition_point(|r| r.spec.end <= start);
            let Some(r) = self.regions.get_mut(i) else {
                return;
            };
            let stop = end.min(r.spec.end);
            r.diff_bytes += stop - start;
            let all_kept = r.run_count as usize == r.runs.len();
            match r.runs.last_mut() {
                // adjacent to the last run (split at a chunk boundary): the same run
                Some(last) if last.1 == start && all_kept => last.1 = stop,
                _ => {
                    r.run_count += 1;
                    if r.runs.len() < MAX_RUNS {
                        r.runs.push((start, stop));
                    }
                }
            }
            start = stop;
        }
    }
}

fn gap(start: u64, end: u64) -> RegionSpec {
    RegionSpec {
        name: "unpartitioned space".into(),
        kind: RegionKind::Unpartitioned,
        start,
        end,
        capture: false,
    }
}

/// The windows of one side being hashed.
struct Hashers {
    windows: Vec<(Window, Sha256, u64)>,
}

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl Hashers {
    fn new(windows: &[Window], side: WhichSide, size: u64) -> Self {
        Hashers {
            windows: windows
                .iter()
                .filter(|w| w.side == side && w.start < w.end && w.start < size)
                .map(|w| {
                    // a window past the member's end stays incomplete; "to the end" is clipped
                    let w = if w.end == u64::MAX {
                        Window {
                            end: size,
                            ..w.clone()
                        }
                    } else {
                        w.clone()
                    };
                    let start = w.start;
                    (w, Sha256::new(), start)
                })
                .collect(),
        }
    }

    /// Feeds `n` bytes at member offset `pos`.
    fn feed(&mut self, pos: u64, s: Span<'_>, n: u64) {
        for (w, h, at) in &mut self.windows {
            let (from, to) = (pos.max(*at), (pos + n).min(w.end));
            if from != *at || from >= to {
                continue;
            }
            match s.sub(from - pos, to - from) {
                Span::Data(d) => h.update(d),
                Span::Zeros => {
                    let mut left = to - from;
                    while left > 0 {
                        let k = left.min(ZEROS.len() as u64);
                        h.update(&ZEROS[..k as usize]);
                        left -= k;
                    }
                }
            }
            *at = to;
        }
    }

    /// The farthest offset still wanted.
    fn wanted_until(&self) -> u64 {
        self.windows
            .iter()
            .filter(|(w, _, at)| *at < w.end)
            .map(|(w, _, _)| w.end)
            .max()
            .unwrap_or(0)
    }

    fn finish(self) -> Vec<WindowResult> {
        self.windows
            .into_iter()
            .map(|(window, h, at)| WindowResult {
                complete: at == window.end,
                digest: Digest::from_bytes(h.finalize().into()),
                window,
            })
            .collect()
    }
}

/// Reads the rest of one side for its windows only.
fn drain(r: &mut Reader<'_>, mut pos: u64, hashers: &mut Hashers) -> Result<(), DiffError> {
    while pos < hashers.wanted_until() {
        let Some(n) = r.avail()? else { break };
        hashers.feed(pos, r.span(), n);
        r.consume(n);
        pos += n;
    }
    Ok(())
}

fn compare_members(
    a: MemberReader<'_>,
    b: MemberReader<'_>,
    planner: &mut Planner<'_>,
) -> Result<MemberResult, DiffError> {
    let name = a.name().to_string();
    let (size_a, size_b) = (a.size(), b.size());
    let limit = size_a.min(size_b);
    let mut ra = Reader::new(a);
    let mut rb = Reader::new(b);
    let head_a = ra.read_head(HEAD.min(size_a))?;
    let head_b = rb.read_head(HEAD.min(size_b))?;
    let plan = planner(&name, size_a, &head_a);
    let mut t = Tracker::new(plan.regions, size_a);
    let mut ha = Hashers::new(&plan.windows, WhichSide::A, size_a);
    let mut hb = Hashers::new(&plan.windows, WhichSide::B, size_b);
    ha.feed(0, Span::Data(&head_a), head_a.len() as u64);
    hb.feed(0, Span::Data(&head_b), head_b.len() as u64);
    let m = head_a.len().min(head_b.len()) as u64;
    t.capture(0, Span::Data(&head_a), m);
    diff_runs(
        0,
        Span::Data(&head_a),
        Span::Data(&head_b),
        m,
        &mut |s, e| t.record(s, e),
    );
    // A head longer than the other side's whole member: the rest only feeds A's windows.
    let (mut pos_a, mut pos_b) = (head_a.len() as u64, head_b.len() as u64);
    drop((head_a, head_b));
    if pos_a == pos_b {
        while pos_a < limit {
            let (Some(xa), Some(xb)) = (ra.avail()?, rb.avail()?) else {
                break;
            };
            let n = xa.min(xb).min(limit - pos_a);
            let (sa, sb) = (ra.span(), rb.span());
            t.capture(pos_a, sa, n);
            diff_runs(pos_a, sa, sb, n, &mut |s, e| t.record(s, e));
            ha.feed(pos_a, sa, n);
            hb.feed(pos_a, sb, n);
            ra.consume(n);
            rb.consume(n);
            pos_a += n;
        }
        pos_b = pos_a;
    }
    drain(&mut ra, pos_a, &mut ha)?;
    drain(&mut rb, pos_b, &mut hb)?;
    let mut windows = ha.finish();
    windows.extend(hb.finish());
    Ok(MemberResult {
        name,
        size_a,
        size_b,
        regions: t.regions,
        windows,
    })
}
