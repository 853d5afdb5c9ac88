//! Just enough GPT parsing to name the regions of a disk image (512-byte sectors).

/// One partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptPartition {
    pub name: String,
    /// Mixed-endian GUID as text, lowercase.
    pub type_guid: String,
    pub start: u64,
    /// Exclusive, in bytes.
    pub end: u64,
}

/// The primary header's view of the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    pub entries_start: u64,
    pub entries_len: u64,
    pub backup_header: u64,
    pub partitions: Vec<GptPartition>,
}

pub const SECTOR: u64 = 512;

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn guid_text(g: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes(g[0..4].try_into().expect("4")),
        u16::from_le_bytes(g[4..6].try_into().expect("2")),
        u16::from_le_bytes(g[6..8].try_into().expect("2")),
        g[8..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        g[10..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Parses the primary GPT from the first bytes of a disk (`head`); `None` when there is none or
/// its entries lie beyond `head`.
pub fn parse_gpt(head: &[u8]) -> Option<Gpt> {
    let hdr = head.get(SECTOR as usize..2 * SECTOR as usize)?;
    if &hdr[0..8] != b"EFI PART" {
        return None;
    }
    let backup_header = u64_at(hdr, 32).checked_mul(SECTOR)?;
    let entries_start = u64_at(hdr, 72).checked_mul(SECTOR)?;
    let count = u32_at(hdr, 80) as u64;
    let size = u32_at(hdr, 84) as u64;
    if !(128..=4096).contains(&size) || count > 16384 {
        return None;
    }
    let entries_len = count * size;
    let table = head.get(entries_start as usize..(entries_start + entries_len) as usize)?;
    let mut partitions = Vec::new();
    for e in table.chunks_exact(size as usize) {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64_at(e, 32);
        let last = u64_at(e, 40);
        if last < first {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        partitions.push(GptPartition {
            name: String::from_utf16_lossy(&units),
            type_guid: guid_text(&e[0..16]),
            start: first.checked_mul(SECTOR)?,
            end: last.checked_add(1)?.checked_mul(SECTOR)?,
        });
    }
    partitions.sort_by_key(|p| p.start);
    Some(Gpt {
        entries_start,
        entries_len,
        backup_header,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_extents() {
        let mut d = vec![0u8; 34 * 512];
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 32..512 + 40].copy_from_slice(&8191u64.to_le_bytes());
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let e = 1024 + 128; // second entry slot
        d[e] = 0xaf;
        d[e + 32..e + 40].copy_from_slice(&2048u64.to_le_bytes());
        d[e + 40..e + 48].copy_from_slice(&4095u64.to_le_bytes());
        for (i, u) in "root".encode_utf16().enumerate() {
            d[e + 56 + 2 * i..e + 58 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        let g = parse_gpt(&d).unwrap();
        assert_eq!(g.backup_header, 8191 * 512);
        assert_eq!(
            g.partitions,
            vec![GptPartition {
                name: "root".into(),
                type_guid: "000000af-0000-0000-0000-000000000000".into(),
                start: 1 << 20,
                end: 2 << 20
            }]
        );
        d[512] = b'X';
        assert!(parse_gpt(&d).is_none());
    }
}
