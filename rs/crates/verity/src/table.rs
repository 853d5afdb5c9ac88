//! The device-mapper table line for the kernel's dm-verity target
//! (Documentation/admin-guide/device-mapper/verity.rst):
//!
//! ```text
//! <start> <sectors> verity <version> <data_dev> <hash_dev> <data_block_size> <hash_block_size>
//!     <num_data_blocks> <hash_start_block> <algorithm> <root_digest> <salt> [<#opt_params> <opt_params>…]
//! ```
//!
//! `hash_start_block` counts hash blocks from the start of the hash device: 1, since the
//! superblock occupies block 0 (the kernel never reads it).

use crate::error::Error;
use crate::superblock::Superblock;
use crate::{RootHash, BLOCK_SIZE, HASH_ALGORITHM, HASH_START_BLOCK, HASH_TYPE};

/// The table line mapping `data_dev` (its first `sb.data_blocks()` blocks) through the tree on
/// `hash_dev`. Devices are paths (`/dev/vda2`) or `major:minor`. `opt_args` are the optional
/// parameters word by word (counted as the kernel counts them), e.g. `["panic_on_corruption"]`,
/// `["restart_on_corruption"]` or `["ignore_zero_blocks", "check_at_most_once"]`; none means I/O
/// errors on corruption, the kernel's default.
pub fn dm_table_line(
    sb: &Superblock,
    root_hash: &RootHash,
    data_dev: &str,
    hash_dev: &str,
    opt_args: &[&str],
) -> Result<String, Error> {
    for (what, word) in [("data device", data_dev), ("hash device", hash_dev)]
        .into_iter()
        .chain(opt_args.iter().map(|a| ("optional parameter", *a)))
    {
        if word.is_empty() || word.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Invalid(format!(
                "{what} {word:?} cannot go into a dm table line: it must be one non-empty word \
                 without spaces or control characters"
            )));
        }
    }
    let sectors = sb.data_size() / 512;
    let mut line = format!(
        "0 {sectors} verity {HASH_TYPE} {data_dev} {hash_dev} {BLOCK_SIZE} {BLOCK_SIZE} {} \
         {HASH_START_BLOCK} {HASH_ALGORITHM} {root_hash} {}",
        sb.data_blocks(),
        sb.salt_hex()
    );
    if !opt_args.is_empty() {
        line.push_str(&format!(" {} {}", opt_args.len(), opt_args.join(" ")));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_kernel_table() {
        let sb = Superblock::new([0; 16], &[0xab; 32], 1000).unwrap();
        let root = RootHash([0x12; 32]);
        let salt = "ab".repeat(32);
        let r = "12".repeat(32);
        assert_eq!(
            dm_table_line(&sb, &root, "/dev/vda3", "/dev/vda4", &[]).unwrap(),
            format!("0 8000 verity 1 /dev/vda3 /dev/vda4 4096 4096 1000 1 sha256 {r} {salt}")
        );
        assert_eq!(
            dm_table_line(&sb, &root, "253:3", "253:4", &["panic_on_corruption"]).unwrap(),
            format!(
                "0 8000 verity 1 253:3 253:4 4096 4096 1000 1 sha256 {r} {salt} 1 panic_on_corruption"
            )
        );
        assert!(dm_table_line(
            &sb,
            &root,
            "a",
            "b",
            &["ignore_zero_blocks", "check_at_most_once"]
        )
        .unwrap()
        .ends_with(" 2 ignore_zero_blocks check_at_most_once"));
        let no_salt = Superblock::new([0; 16], &[], 1).unwrap();
        assert!(dm_table_line(&no_salt, &root, "a", "b", &[])
            .unwrap()
            .ends_with(&format!("{r} -")));
    }

    #[test]
    fn refuses_words_that_would_split_the_line() {
        let sb = Superblock::new([0; 16], &[1], 1).unwrap();
        let root = RootHash([0; 32]);
        for (d, h, o) in [
            ("", "b", &[][..]),
            ("a b", "b", &[][..]),
            ("a", "b\n", &[][..]),
            ("a", "b", &["restart_on_corruption 1"][..]),
            ("a", "b", &[""][..]),
        ] {
            let e = dm_table_line(&sb, &root, d, h, o).unwrap_err().to_string();
            assert!(e.contains("cannot go into a dm table line"), "{e}");
        }
    }
}
