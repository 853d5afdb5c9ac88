//! Lockstep comparison of the members of two packages, region by region, without materialising
//! either image: both streams are decoded side by side, holes are compared as zeros without
//! being expanded, and reading stops as soon as every region of interest has a first difference.

use std::path::Path;

use serde::Serialize;

use crate::package::{MemberReader, Package, Piece};
use crate::rootfs::Side as WhichSide;
use crate::DiffError;

/// How much of each member is read before the regions are planned (GPT lives here).
pub const HEAD: u64 = 1 << 20;
/// How much of the start of a region is kept (from side A) when the region is marked `capture`.
pub const CAPTURE: u64 = 1 << 20;

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
    /// Keep reading until this region's first difference is found (or it is passed).
    pub interest: bool,
    /// Keep the first [`CAPTURE`] bytes of side A (to parse a filesystem later).
    pub capture: bool,
}

/// A region after the comparison.
#[derive(Clone, Debug)]
pub struct RegionResult {
    pub spec: RegionSpec,
    /// Member offset of the first differing byte inside the region.
    pub first_diff: Option<u64>,
    /// Whether the whole region was compared (a region without a difference that was not
    /// completely compared is "unknown", not "equal").
    pub compared_to_end: bool,
    /// The first bytes of the region in A, when `capture` was asked for.
    pub head_a: Vec<u8>,
}

/// One member present in both packages.
#[derive(Clone, Debug)]
pub struct MemberResult {
    pub name: String,
    pub size_a: u64,
    pub size_b: u64,
    pub regions: Vec<RegionResult>,
}

impl MemberResult {
    pub fn differs(&self) -> bool {
        self.size_a != self.size_b || self.regions.iter().any(|r| r.first_diff.is_some())
    }
}

#[derive(Clone, Debug)]
pub enum MemberOutcome {
    Compared(MemberResult),
    OnlyIn { name: String, side: WhichSide },
}

/// The regions of one member.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Sorted, not overlapping; regions past the member's end are dropped, overlaps clipped.
    pub regions: Vec<RegionSpec>,
    /// Whether the gaps between `regions` (filled in as [`RegionKind::Unpartitioned`]) are of interest.
    pub gap_interest: bool,
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

fn first_nonzero(d: &[u8]) -> Option<usize> {
    let mut base = 0;
    for c in d.chunks(4096) {
        if !c.iter().all(|&x| x == 0) {
            return c.iter().position(|&x| x != 0).map(|i| base + i);
        }
        base += c.len();
    }
    None
}

fn first_mismatch(a: Span<'_>, b: Span<'_>) -> Option<usize> {
    match (a, b) {
        (Span::Zeros, Span::Zeros) => None,
        (Span::Zeros, Span::Data(d)) | (Span::Data(d), Span::Zeros) => first_nonzero(d),
        (Span::Data(x), Span::Data(y)) => {
            let mut base = 0;
            for (cx, cy) in x.chunks(4096).zip(y.chunks(4096)) {
                if cx != cy {
                    return cx
                        .iter()
                        .zip(cy)
                        .position(|(p, q)| p != q)
                        .map(|i| base + i);
                }
                base += cx.len();
            }
            None
        }
    }
}

struct Tracker {
    regions: Vec<RegionResult>,
    skip_until: u64,
}

impl Tracker {
    fn new(plan: Plan, size: u64) -> Self {
        let gi = plan.gap_interest;
        let mut regions = Vec::new();
        let mut at = 0;
        for s in plan.regions {
            let (start, end) = (s.start.max(at).min(size), s.end.min(size));
            if start >= end {
                continue;
            }
            if start > at {
                regions.push(gap(at, start, gi));
            }
            regions.push(RegionResult {
                spec: RegionSpec { start, end, ..s },
                first_diff: None,
                compared_to_end: false,
                head_a: Vec::new(),
            });
            at = end;
        }
        if at < size {
            regions.push(gap(at, size, gi));
        }
        Tracker {
            regions,
            skip_until: 0,
        }
    }

    fn capture(&mut self, pos: u64, a: Span<'_>, n: u64) {
        if n == 0 {
            return;
        }
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

    fn record(&mut self, p: u64) {
        let i = self.regions.partition_point(|r| r.spec.end <= p);
        match self.regions.get_mut(i) {
            Some(r) if r.spec.start <= p => {
                r.first_diff.get_or_insert(p);
                self.skip_until = r.spec.end;
            }
            _ => self.skip_until = p + 1,
        }
    }

    /// Compares `n` bytes at member offset `pos`.
    fn span(&mut self, pos: u64, a: Span<'_>, b: Span<'_>, n: u64) {
        let mut off = 0;
        while off < n {
            let len = n - off;
            let here = pos + off;
            if here < self.skip_until {
                let k = len.min(self.skip_until - here);
                self.capture(here, a.sub(off, k), k);
                off += k;
                continue;
            }
            match first_mismatch(a.sub(off, len), b.sub(off, len)) {
                None => {
                    self.capture(here, a.sub(off, len), len);
                    off = n;
                }
                Some(i) => {
                    let i = i as u64;
                    self.capture(here, a.sub(off, i), i);
                    off += i;
                    self.record(pos + off);
                }
            }
        }
    }

    /// Nothing left to learn past `pos`.
    fn done(&self, pos: u64) -> bool {
        self.regions.iter().all(|r| {
            let open = r.spec.end > pos;
            let want_diff = r.spec.interest && r.first_diff.is_none() && open;
            let cap_len = CAPTURE.min(r.spec.end - r.spec.start);
            let want_capture = r.spec.capture
                && r.first_diff.is_some()
                && (r.head_a.len() as u64) < cap_len
                && open;
            !want_diff && !want_capture
        })
    }
}

fn gap(start: u64, end: u64, interest: bool) -> RegionResult {
    RegionResult {
        spec: RegionSpec {
            name: "unpartitioned space".into(),
            kind: RegionKind::Unpartitioned,
            start,
            end,
            interest,
            capture: false,
        },
        first_diff: None,
        compared_to_end: false,
        head_a: Vec::new(),
    }
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
    let head_a = ra.read_head(HEAD.min(limit))?;
    let head_b = rb.read_head(HEAD.min(limit))?;
    let mut t = Tracker::new(planner(&name, size_a, &head_a), size_a);
    let m = head_a.len().min(head_b.len()) as u64;
    t.span(0, Span::Data(&head_a), Span::Data(&head_b), m);
    drop((head_a, head_b));
    let mut pos = m;
    while pos < limit && !t.done(pos) {
        let (Some(xa), Some(xb)) = (ra.avail()?, rb.avail()?) else {
            break;
        };
        let n = xa.min(xb).min(limit - pos);
        t.span(pos, ra.span(), rb.span(), n);
        ra.consume(n);
        rb.consume(n);
        pos += n;
    }
    for r in &mut t.regions {
        r.compared_to_end = r.first_diff.is_some() || r.spec.end <= pos;
    }
    Ok(MemberResult {
        name,
        size_a,
        size_b,
        regions: t.regions,
    })
}
