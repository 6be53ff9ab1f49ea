//! Text from a server or a peer — chat messages, display names, channel names — made safe for
//! a terminal, a notification or a log line.
//!
//! **Text from the wire is data, never terminal input.** Whatever a server or a peer sends (our
//! server refuses control characters, but a client must not trust that), [`sanitize`] turns it
//! into text that cannot act on a terminal: C0 and C1 controls (ESC, BEL, CSI, …) and DEL
//! become visible symbols (`␛`, `␇`, `�`), so no escape sequence can start — no title change
//! (`ESC ] 0 ;`), no clear (`ESC [ 2 J`), no clipboard write (OSC 52); bidi embeddings,
//! overrides, isolates and marks become `�`, so text cannot reorder what is around it; other
//! invisible format characters are dropped, except the joiners that emoji sequences need.
//! Pure.

/// Whether `text` mentions `name` as a whole word (case-insensitive; `@name` too).
pub fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let name = name.to_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(&name).any(|(at, _)| {
        !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next())
    })
}

/// One line of text as it may be drawn (see the module docs). A line feed here is a control
/// like any other (`␊`): a message's lines are split before this ([`crate::tui::chat::rows`]).
pub fn sanitize(text: &str) -> String {
    text.chars().filter_map(safe_char).collect()
}

fn safe_char(c: char) -> Option<char> {
    Some(match c {
        // C0 controls as their Unicode control pictures (␀…␟), DEL as ␡.
        '\0'..='\x1f' => char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{FFFD}'),
        '\x7f' => '\u{2421}',
        // C1 controls: no picture exists.
        '\u{80}'..='\u{9f}' => '\u{FFFD}',
        // Bidi embeddings, overrides, isolates and marks: shown, never obeyed.
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => '\u{FFFD}',
        // Joiners stay (emoji sequences need them); variation selectors have no width.
        '\u{200C}' | '\u{200D}' => c,
        // Other invisible formatting (zero-width space, word joiner, BOM, tags…) goes.
        c if is_invisible_format(c) => return None,
        c => c,
    })
}

fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{206A}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}
