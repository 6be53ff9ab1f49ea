//! Chat rules that need no state: what text a message may hold, and how long a history page
//! is. Pure. A message is data: it is checked here so that nothing a terminal or a page could
//! take as a command is ever stored (no control characters but line feeds), and it is never
//! interpreted on the way through.

use cromulent_protocol::ErrorReason;

/// History page size when the client names none, and the most it may ask for.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;

/// Why a text was refused: the reason and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: ErrorReason,
    pub message: String,
}

/// Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they reorder the
/// text around them, so a message could make another line read differently. (Marks such as
/// U+200E and joiners such as U+200D, which emoji sequences need, stay allowed.)
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The text to store for `text`, or why it is refused. CR LF and lone CR become LF (what a
/// browser's field or a terminal sends for a new line); any other C0 or C1 control (ESC, BEL,
/// DEL, NUL, tab, …) and any bidi control is refused with the code point named. Empty or white-space-only text is
/// refused; so is text over `max_chars` characters (Unicode scalar values, counted after the
/// line endings are folded).
pub fn check_text(text: &str, max_chars: usize) -> Result<String, Refused> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if let Some(c) = text
        .chars()
        .find(|&c| (c.is_control() && c != '\n') || is_bidi_control(c))
    {
        return Err(Refused {
            reason: ErrorReason::InvalidText,
            message: format!(
                "a message must not contain the control character U+{:04X}",
                u32::from(c)
            ),
        });
    }
    if text.trim().is_empty() {
        return Err(Refused {
            reason: ErrorReason::InvalidText,
            message: "a message must not be empty".into(),
        });
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(Refused {
            reason: ErrorReason::TextTooLong,
            message: format!("a message may hold {max_chars} characters; this one has {chars}"),
        });
    }
    Ok(text)
}

/// The page size to serve for a requested `limit`.
pub fn page_size(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_line_feeds_emoji_and_bidi_letters_pass() {
        for t in [
            "brb",
            "line one\nline two",
            "héllo 👋🏽 世界",
            "שלום abc",
            " padded ",
            "family 👨\u{200D}👩\u{200D}👧",
        ] {
            assert_eq!(check_text(t, 2000).as_deref(), Ok(t));
        }
    }

    #[test]
    fn crlf_and_cr_become_line_feeds() {
        assert_eq!(check_text("a\r\nb\rc", 100).unwrap(), "a\nb\nc");
    }

    #[test]
    fn terminal_controls_are_refused_and_named() {
        for (t, cp) in [
            ("\x1b]0;pwned\x07", "U+001B"),
            ("clear\x1b[2J", "U+001B"),
            ("bell\x07", "U+0007"),
            ("nul\0", "U+0000"),
            ("tab\there", "U+0009"),
            ("del\x7f", "U+007F"),
            ("csi\u{9b}2J", "U+009B"),
            ("abc\u{202E}fed", "U+202E"),
            ("x\u{2067}y", "U+2067"),
        ] {
            let e = check_text(t, 2000).unwrap_err();
            assert_eq!(e.reason, ErrorReason::InvalidText, "{t:?}");
            assert!(e.message.contains(cp), "{t:?}: {}", e.message);
        }
    }

    #[test]
    fn empty_and_blank_are_refused() {
        for t in ["", "   ", "\n\n", "\r\n"] {
            assert_eq!(
                check_text(t, 10).unwrap_err().reason,
                ErrorReason::InvalidText
            );
        }
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(check_text(&"é".repeat(10), 10).is_ok());
        let e = check_text(&"é".repeat(11), 10).unwrap_err();
        assert_eq!(e.reason, ErrorReason::TextTooLong);
        assert!(
            e.message.contains("10") && e.message.contains("11"),
            "{}",
            e.message
        );
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None), DEFAULT_PAGE);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(7)), 7);
        assert_eq!(page_size(Some(10_000)), MAX_PAGE);
    }
}
