//! FAT's name rules, and how each name is handed to fatfs 0.3.6 so that it lands as itself.
//!
//! FAT compares long names case-insensitively through an upcase table that maps each UTF-16 unit
//! to at most one unit (Windows; Linux folds ASCII only): [`fat_upcase`]. fatfs 0.3.6 differs in
//! three ways, each of which would make a valid tree fail or lose a file:
//!
//! - it refuses names longer than 255 UTF-8 *bytes* ("File name too long") and characters
//!   beyond U+FFFF, although FAT holds 255 UTF-16 units;
//! - it looks names up with Unicode's full uppercase (`char::to_uppercase`, "ß" → "SS"), long
//!   names and short names alike, and `create_file`/`create_dir` open an entry they find
//!   instead of creating one: creating "straße" next to "STRASSE" would silently reuse
//!   "STRASSE";
//! - a literal 8.3 name equal to a short alias it generated earlier ("LONGNA~1.TXT" after
//!   "LONGNAME1.TXT") finds that alias and reuses its entry too.
//!
//! Hence: names that are literal short names containing '~' are created first in their
//! directory, so they own their short names and later aliases step around them (as Windows
//! and Linux pick the next free ~N); an ASCII name that fatfs's lookup cannot confuse with an
//! earlier sibling goes to fatfs as is; every other name goes through a placeholder
//! ([`placeholder`]) and the block cache writes the real long name in its slots.

use std::collections::HashSet;

/// Longest path, in UTF-16 units, from the root with a leading `\` (the FAT specification:
/// "the total path length of a long name cannot exceed 260 characters, including the trailing
/// NUL").
pub const MAX_PATH_UNITS: usize = 259;

/// A long name's problem, for the caller to attach the entry.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.encode_utf16().count() > 255 {
        return Err(format!(
            "has a name component longer than 255 UTF-16 units (FAT's limit): {name:?}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || "\"*:<>?\\|".contains(*c))
    {
        return Err(format!(
            "has {c:?} in {name:?}, which FAT names cannot contain: rename it"
        ));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(format!(
            "has a name ending in a dot or space ({name:?}), which FAT drops: rename it"
        ));
    }
    Ok(())
}

/// The path's length as FAT counts it: `\` before each component, in UTF-16 units.
pub fn path_units(path: &[String]) -> usize {
    path.iter().map(|c| 1 + c.encode_utf16().count()).sum()
}

/// The key FAT compares names by: each UTF-16 unit through the simple (one-to-one) uppercase
/// mapping; surrogates (characters beyond U+FFFF) are compared as they are.
pub fn fat_upcase(name: &str) -> Vec<u16> {
    name.encode_utf16()
        .map(|unit| char::from_u32(u32::from(unit)).map_or(unit, |c| simple_upper(c, unit)))
        .collect()
}

fn simple_upper(c: char, unit: u16) -> u16 {
    let mut full = c.to_uppercase();
    match (full.next(), full.next()) {
        (Some(up), None) => u16::try_from(u32::from(up)).unwrap_or(unit),
        // Unicode's full uppercase is several characters (ß → SS, ﬁ → FI): the simple mapping is
        // the character itself, except for the Greek letters with ypogegrammeni, whose simple
        // uppercase is their titlecase form (UnicodeData.txt).
        _ => match unit {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => unit + 8,
            0x1FB3 | 0x1FC3 | 0x1FF3 => unit + 9,
            _ => unit,
        },
    }
}

/// fatfs's lookup key: Unicode full uppercase of every character.
pub fn fatfs_key(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// A name fatfs stores as its own short name (an 8.3 name without lossy conversion, any case)
/// that contains '~', the mark of a generated alias: such names are created first in their
/// directory so that no alias takes their short name.
pub fn claims_alias_form(name: &str) -> bool {
    fn sfn_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c)
    }
    let (base, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    name.contains('~')
        && base.len() <= 8
        && ext.len() <= 3
        && base.chars().all(sfn_char)
        && ext.chars().all(sfn_char)
}

/// How a name is handed to fatfs in a directory whose earlier entries have the fatfs keys
/// `taken`.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// As it is.
    Direct,
    /// Created under this placeholder, then renamed in its long-name slots.
    Placeholder(String),
}

/// Characters that long names may hold but short names may not: a placeholder holds at least
/// one, so it never matches a short name, and fatfs turns each into '_' in the alias, as it
/// would a non-ASCII character.
const FILLERS: [char; 6] = ['+', ',', ';', '=', '[', ']'];

pub fn plan(name: &str, taken: &HashSet<String>) -> Result<Plan, String> {
    // fatfs 0.3.6 makes the short name of ".a" (whose last dot is its first character) from an
    // empty base, ".A", which fsck.fat rejects ("Bad short file name"): such names take a
    // placeholder whose leading dot is a filler, so the alias has a base ("_A~1").
    if name.is_ascii() && name.rfind('.') != Some(0) && !taken.contains(&fatfs_key(name)) {
        return Ok(Plan::Direct);
    }
    placeholder(name, taken).map(Plan::Placeholder).ok_or_else(|| {
        format!(
            "cannot be written through fatfs next to its siblings (every placeholder of its length is taken): \
             rename it or its siblings ({name:?})"
        )
    })
}

/// A placeholder as long as `name` in UTF-16 units: ASCII kept, every other character replaced
/// by a filler (two for a character beyond U+FFFF), at least one filler, and a fatfs key no
/// earlier sibling has.
fn placeholder(name: &str, taken: &HashSet<String>) -> Option<String> {
    let candidates = FILLERS.iter().flat_map(|&filler| {
        let mut p: Vec<char> = name
            .chars()
            .flat_map(|c| {
                let n = if c.is_ascii() { 0 } else { c.len_utf16() };
                std::iter::repeat_n(filler, n).chain(c.is_ascii().then_some(c))
            })
            .collect();
        if p.first() == Some(&'.') {
            p[0] = filler; // a short name never starts with a dot (see `plan`)
        }
        if !p.contains(&filler) {
            // An ASCII name: the filler goes in place of its last character.
            if let Some(last) = p.last_mut() {
                *last = filler;
            }
        }
        let all_fillers = vec![filler; p.len()];
        [p, all_fillers]
    });
    candidates
        .map(|p| p.into_iter().collect::<String>())
        .find(|p| !taken.contains(&fatfs_key(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_compares_by_simple_uppercase_per_unit() {
        assert_eq!(fat_upcase("readme"), fat_upcase("README"));
        assert_eq!(fat_upcase("été"), fat_upcase("ÉTÉ"));
        assert_ne!(fat_upcase("straße"), fat_upcase("STRASSE"));
        assert_eq!(fat_upcase("ß"), "ß".encode_utf16().collect::<Vec<_>>());
        assert_ne!(fat_upcase("ﬁ"), fat_upcase("FI"));
        assert_eq!(fat_upcase("\u{1F80}"), fat_upcase("\u{1F88}"));
        assert_eq!(fat_upcase("\u{1FB3}"), fat_upcase("\u{1FBC}"));
        // Beyond U+FFFF: surrogates are not folded (𐐨 vs 𐐀 are distinct on FAT).
        assert_ne!(fat_upcase("\u{10428}"), fat_upcase("\u{10400}"));
    }

    #[test]
    fn names_and_paths() {
        assert!(check_name(&"é".repeat(255)).is_ok());
        assert!(check_name(&"é".repeat(256)).unwrap_err().contains("255"));
        assert!(check_name(&"😀".repeat(127)).is_ok());
        assert!(check_name(&"😀".repeat(128)).is_err());
        assert!(check_name("a:b").is_err());
        assert!(check_name("a.").is_err());
        assert_eq!(path_units(&["EFI".into(), "BOOT".into()]), 9);
        assert_eq!(path_units(&["😀".into()]), 3);
    }

    #[test]
    fn alias_form_and_placeholders() {
        assert!(claims_alias_form("LONGNA~1.TXT"));
        assert!(claims_alias_form("longna~1.txt"));
        assert!(!claims_alias_form("LONGNAME1.TXT"));
        assert!(!claims_alias_form("long na~1.txt"));
        assert!(!claims_alias_form("a~b.c.d"));
        assert!(!claims_alias_form("LONGNAME~1.TXT"));

        let mut taken = HashSet::new();
        assert_eq!(plan(".a", &taken), Ok(Plan::Placeholder("+a".into())));
        assert_eq!(
            plan(".profile", &taken),
            Ok(Plan::Placeholder("+profile".into()))
        );
        assert_eq!(plan(".a.b", &taken), Ok(Plan::Direct));
        assert_eq!(plan("STRASSE", &taken), Ok(Plan::Direct));
        taken.insert(fatfs_key("STRASSE"));
        assert_eq!(
            plan("straße", &taken),
            Ok(Plan::Placeholder("stra+e".into()))
        );
        assert_eq!(
            plan("strasse", &taken),
            Ok(Plan::Placeholder("strass+".into()))
        );
        taken.insert(fatfs_key("stra+e"));
        assert_eq!(
            plan("straße", &taken),
            Ok(Plan::Placeholder("++++++".into()))
        );
        let p = plan("😀.efi", &HashSet::new()).unwrap();
        assert_eq!(p, Plan::Placeholder("++.efi".into()));
        assert_eq!(
            plan(&"é".repeat(128), &HashSet::new()),
            Ok(Plan::Placeholder("+".repeat(128)))
        );
    }
}
