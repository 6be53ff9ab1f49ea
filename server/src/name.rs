//! What a user id or display name may be, and when two names look the same.
//!
//! A name is trimmed and NFC-normalised, then refused if any character is one a reader cannot
//! see or that changes how text around it is shown: controls, format characters (Cf: zero-width
//! joiners, bidi overrides and isolates, the BOM), default-ignorable code points, separators
//! other than the plain space (no-break space, U+2028, U+2029), private-use, surrogate and
//! unassigned code points. The error names the offending code point.
//!
//! [`skeleton`] is UTS #39's confusable skeleton: `alice`, `аlice` (Cyrillic а) and `ａｌｉｃｅ`
//! share one, so the hub can refuse a look-alike of a connected user (`name_taken`).
//! Pure functions; no I/O.
//! It never decides who holds a name: the hub refuses look-alikes of users it knows.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name longer than {0} characters")]
    TooLong(usize),
    #[error("name must not contain {what} U+{code:04X}")]
    Forbidden { code: u32, what: &'static str },
}

/// A name as the server keeps it: trimmed, NFC, `1..=max_chars` characters, nothing invisible.
pub fn check_name(raw: &str, max_chars: usize) -> Result<String, NameError> {
    // Only plain spaces are trimmed: any other white space is refused below, not hidden.
    let name: String = raw.trim_matches(' ').nfc().collect();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > max_chars {
        return Err(NameError::TooLong(max_chars));
    }
    if let Some((c, what)) = name.chars().find_map(|c| forbidden(c).map(|w| (c, w))) {
        return Err(NameError::Forbidden {
            code: u32::from(c),
            what,
        });
    }
    Ok(name)
}

/// The UTS #39 confusable skeleton of an (already checked) name.
pub fn skeleton(name: &str) -> String {
    unicode_security::confusable_detection::skeleton(name).collect()
}

/// What kind of forbidden character `c` is, if it is one.
fn forbidden(c: char) -> Option<&'static str> {
    if default_ignorable(c) {
        return Some("the invisible character");
    }
    match c.general_category() {
        GeneralCategory::Control => Some("the control character"),
        GeneralCategory::Format => Some("the format character"),
        GeneralCategory::SpaceSeparator if c != ' ' => Some("the space character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("the separator")
        }
        GeneralCategory::PrivateUse => Some("the private-use character"),
        GeneralCategory::Surrogate => Some("the surrogate"),
        GeneralCategory::Unassigned => Some("the unassigned code point"),
        _ => None,
    }
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, stable since
/// Unicode 5.2): characters a renderer shows as nothing. Most are also Cf; these ranges catch
/// the rest (Hangul fillers, variation selectors, U+034F, tags' reserved neighbours).
fn default_ignorable(c: char) -> bool {
    matches!(u32::from(c),
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_trimmed_and_composed() {
        assert_eq!(check_name("  Zoë Martin ", 32).unwrap(), "Zoë Martin");
        assert_eq!(check_name("Zoe\u{0308}", 32).unwrap(), "Zo\u{00eb}");
        assert_eq!(check_name("山田", 32).unwrap(), "山田");
        assert_eq!(check_name("😀 emoji", 32).unwrap(), "😀 emoji");
    }

    #[test]
    fn empty_and_long_names_are_refused() {
        assert_eq!(check_name("", 32), Err(NameError::Empty));
        assert_eq!(check_name("   ", 32), Err(NameError::Empty));
        assert_eq!(check_name(&"x".repeat(33), 32), Err(NameError::TooLong(32)));
        // Length is counted after composition.
        assert!(check_name(&"e\u{0301}".repeat(32), 32).is_ok());
    }

    #[test]
    fn every_kind_of_invisible_character_is_named() {
        for (c, code) in [
            ('\u{7}', "U+0007"),
            ('\n', "U+000A"),
            ('\u{ad}', "U+00AD"),
            ('\u{a0}', "U+00A0"),
            ('\u{200b}', "U+200B"),
            ('\u{200d}', "U+200D"),
            ('\u{202e}', "U+202E"),
            ('\u{2066}', "U+2066"),
            ('\u{2028}', "U+2028"),
            ('\u{2029}', "U+2029"),
            ('\u{3000}', "U+3000"),
            ('\u{3164}', "U+3164"),
            ('\u{fe0f}', "U+FE0F"),
            ('\u{feff}', "U+FEFF"),
            ('\u{e000}', "U+E000"),
            ('\u{f0000}', "U+F0000"),
            ('\u{0378}', "U+0378"),
            ('\u{e0041}', "U+E0041"),
        ] {
            let err = check_name(&format!("al{c}ice"), 32).unwrap_err();
            assert!(err.to_string().contains(code), "{c:?}: {err}");
        }
    }

    #[test]
    fn look_alikes_share_a_skeleton_and_different_names_do_not() {
        let alice = skeleton("alice");
        for fake in ["\u{0430}lice", "aIice", "ａｌｉｃｅ"] {
            assert_eq!(skeleton(fake), alice, "{fake}");
        }
        for other in ["alicia", "Alice2", "bob"] {
            assert_ne!(skeleton(other), alice, "{other}");
        }
    }
}
