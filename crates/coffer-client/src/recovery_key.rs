//! The 64-digit recovery key: the backup key K written for people.
//!
//! Display: 64 lowercase hex digits in 16 groups of 4, separated by `-`
//! (`RecoveryKey::display_grouped` takes the separator). Parsing accepts any case and
//! ignores spaces, dashes, tabs and newlines, so a key copied from paper or a screen works.

use coffer_backup::BackupKey;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Number of hex digits in a recovery key.
pub const RECOVERY_KEY_DIGITS: usize = 64;

/// The recovery key text could not be parsed. Never contains the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryKeyError {
    /// A character that is neither a hex digit nor a separator.
    #[error(
        "the recovery key contains {found:?} at position {position}; only 0-9, a-f, spaces and dashes are allowed"
    )]
    InvalidCharacter {
        /// 1-based position among the non-separator characters.
        position: usize,
        /// The offending character (not secret on its own: it is not a hex digit).
        found: char,
    },
    /// Too few or too many hex digits.
    #[error("the recovery key has {found} hex digits; it must have 64 (16 groups of 4)")]
    WrongLength {
        /// Hex digits found.
        found: usize,
    },
}

/// A recovery key: the 32-byte backup key K. Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct RecoveryKey(Zeroizing<[u8; 32]>);

impl RecoveryKey {
    /// The recovery key of a backup key.
    pub fn from_backup_key(key: &BackupKey) -> Self {
        RecoveryKey(Zeroizing::new(*key.as_bytes()))
    }

    /// The backup key this recovery key stands for.
    pub fn to_backup_key(&self) -> BackupKey {
        BackupKey::from_bytes(*self.0)
    }

    /// Parses user input: any case; spaces, dashes, tabs and newlines are ignored.
    pub fn parse(text: &str) -> Result<Self, RecoveryKeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        let mut n = 0usize;
        for c in text.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let Some(v) = c.to_digit(16) else {
                return Err(RecoveryKeyError::InvalidCharacter {
                    position: n + 1,
                    found: c,
                });
            };
            if n < RECOVERY_KEY_DIGITS {
                // `v < 16`, so the cast cannot truncate.
                let nibble = v as u8;
                bytes[n / 2] |= if n.is_multiple_of(2) {
                    nibble << 4
                } else {
                    nibble
                };
            }
            n += 1;
        }
        if n != RECOVERY_KEY_DIGITS {
            return Err(RecoveryKeyError::WrongLength { found: n });
        }
        Ok(RecoveryKey(bytes))
    }

    /// The key as 16 groups of 4 lowercase hex digits joined by `sep` (`'-'` or `' '`).
    pub fn display_grouped(&self, sep: char) -> Zeroizing<String> {
        let digits = Zeroizing::new(hex::encode(*self.0));
        let mut out = Zeroizing::new(String::with_capacity(79));
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && i.is_multiple_of(4) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// Constant-time comparison with a backup key.
    pub fn matches(&self, key: &BackupKey) -> bool {
        self.0.ct_eq(key.as_bytes()).into()
    }
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

impl std::str::FromStr for RecoveryKey {
    type Err = RecoveryKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecoveryKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> RecoveryKey {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37).wrapping_add(0xa5);
        }
        RecoveryKey::from_backup_key(&BackupKey::from_bytes(b))
    }

    #[test]
    fn display_is_16_groups_of_4() {
        let k = sample();
        let s = k.display_grouped('-');
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 16);
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }));
        assert_eq!(k.display_grouped(' ').split(' ').count(), 16);
    }

    #[test]
    fn round_trips_through_any_case_and_separators() {
        let k = sample();
        let dashed = k.display_grouped('-');
        let spaced = k.display_grouped(' ').to_uppercase();
        let bare: String = dashed.chars().filter(|c| *c != '-').collect();
        let messy = format!("  {}\n", dashed.replace('-', " - ").replacen("a", "A", 3));
        for text in [
            dashed.as_str(),
            spaced.as_str(),
            bare.as_str(),
            messy.as_str(),
        ] {
            let parsed = RecoveryKey::parse(text).unwrap();
            assert!(parsed.matches(&k.to_backup_key()), "input {text:?}");
        }
    }

    #[test]
    fn a_changed_digit_gives_a_different_key() {
        let k = sample();
        let mut s = k.display_grouped('-').to_string();
        let first = s.remove(0);
        s.insert(0, if first == '0' { '1' } else { '0' });
        assert!(!RecoveryKey::parse(&s).unwrap().matches(&k.to_backup_key()));
    }

    #[test]
    fn wrong_length_is_reported_with_the_count() {
        let k = sample();
        let s = k.display_grouped('-');
        assert_eq!(
            RecoveryKey::parse(&s[..s.len() - 5]).unwrap_err(),
            RecoveryKeyError::WrongLength { found: 60 }
        );
        assert_eq!(
            RecoveryKey::parse(&format!("{}-0", &*s)).unwrap_err(),
            RecoveryKeyError::WrongLength { found: 65 }
        );
        assert_eq!(
            RecoveryKey::parse("").unwrap_err(),
            RecoveryKeyError::WrongLength { found: 0 }
        );
    }

    #[test]
    fn bad_characters_are_named_with_their_position() {
        let err = RecoveryKey::parse("abcd-efgh").unwrap_err();
        assert_eq!(
            err,
            RecoveryKeyError::InvalidCharacter {
                position: 7,
                found: 'g'
            }
        );
        assert!(err.to_string().contains("position 7"));
        assert!(RecoveryKey::parse("0o").is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let k = sample();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.display_grouped('-')[..4]));
        assert!(dbg.contains("redacted"));
    }
}
