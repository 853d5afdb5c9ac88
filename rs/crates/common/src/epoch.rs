use std::fmt;
use std::str::FromStr;

/// The build's only notion of time (<https://reproducible-builds.org/specs/source-date-epoch/>).
///
/// Every tool takes it explicitly (flag or `SOURCE_DATE_EPOCH`); none falls back to "now".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceDateEpoch(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("SOURCE_DATE_EPOCH is not set: pass --source-date-epoch SECONDS or export SOURCE_DATE_EPOCH (for example the commit time: git log -1 --format=%ct)")]
    Missing,
    #[error("SOURCE_DATE_EPOCH {0:?} is not a whole number of seconds since 1970-01-01 UTC")]
    Invalid(String),
    #[error("SOURCE_DATE_EPOCH {0} is beyond 2106-02-07, the last second 32-bit on-disk timestamps can hold")]
    TooLarge(u64),
}

impl SourceDateEpoch {
    /// Largest value every on-disk format we write (tar, ext4 with extra timestamps, FAT dates) can represent.
    pub const MAX: u64 = u32::MAX as u64;

    /// From an explicit value if given, else from the `SOURCE_DATE_EPOCH` environment variable.
    pub fn resolve(explicit: Option<&str>) -> Result<Self, EpochError> {
        match explicit {
            Some(v) => v.parse(),
            None => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v.parse(),
                Err(_) => Err(EpochError::Missing),
            },
        }
    }

    pub fn seconds(self) -> u64 {
        self.0
    }

    /// Clamps a timestamp to the epoch: anything newer becomes the epoch.
    pub fn clamp(self, mtime: u64) -> u64 {
        mtime.min(self.0)
    }
}

impl FromStr for SourceDateEpoch {
    type Err = EpochError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EpochError::Invalid(s.to_string()));
        }
        let v: u64 = t.parse().map_err(|_| EpochError::Invalid(s.to_string()))?;
        if v > Self::MAX {
            return Err(EpochError::TooLarge(v));
        }
        Ok(SourceDateEpoch(v))
    }
}

impl fmt::Display for SourceDateEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "1700000000".parse::<SourceDateEpoch>().unwrap().0,
            1_700_000_000
        );
        assert!(matches!(
            "-1".parse::<SourceDateEpoch>(),
            Err(EpochError::Invalid(_))
        ));
        assert!(matches!(
            "now".parse::<SourceDateEpoch>(),
            Err(EpochError::Invalid(_))
        ));
        assert!(matches!(
            "99999999999".parse::<SourceDateEpoch>(),
            Err(EpochError::TooLarge(_))
        ));
        assert_eq!(SourceDateEpoch(10).clamp(20), 10);
        assert_eq!(SourceDateEpoch(10).clamp(5), 5);
    }
}
