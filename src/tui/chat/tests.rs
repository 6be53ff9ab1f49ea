use super::*;

fn msg(id: MessageId, channel: ChannelId, user: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id,
        channel,
        user: user.into(),
        name: user.into(),
        time: 0,
        text: text.into(),
    }
}

#[test]
fn escape_sequences_cannot_reach_the_terminal() {
    for hostile in [
        "\x1b]0;pwned\x07",       // set the window title
        "\x1b[2J\x1b[H",          // clear the screen, home the cursor
        "\x1b]52;c;cHduZWQ=\x07", // write the clipboard (OSC 52)
        "\u{9b}2J",               // C1 CSI
        "\x1bP+q544e\x1b\\",      // DCS request
        "a\rb\x08c\x7f",
    ] {
        let safe = sanitize(hostile);
        assert!(
            !safe.chars().any(|c| c.is_control()),
            "{hostile:?} -> {safe:?}"
        );
    }
    assert_eq!(sanitize("\x1b]0;pwned\x07"), "␛]0;pwned␇");
    assert_eq!(sanitize("\u{9b}2J"), "\u{FFFD}2J");
}

#[test]
fn bidi_controls_are_shown_not_obeyed_and_invisible_ones_dropped() {
    assert_eq!(sanitize("abc\u{202E}fed"), "abc\u{FFFD}fed");
    assert_eq!(sanitize("\u{2067}x\u{2069}"), "\u{FFFD}x\u{FFFD}");
    assert_eq!(sanitize("zero\u{200B}width\u{FEFF}"), "zerowidth");
    // Emoji sequences keep their joiner; letters of any script stay.
    assert_eq!(sanitize("👨\u{200D}👩"), "👨\u{200D}👩");
    assert_eq!(sanitize("שלום, 世界"), "שלום, 世界");
}

#[test]
fn rows_wrap_by_display_width_and_split_lines() {
    assert_eq!(rows("hello world again", 11), vec!["hello world", "again"]);
    assert_eq!(rows("one\ntwo", 20), vec!["one", "two"]);
    // Wide characters take two cells and are never cut in half.
    assert_eq!(rows("世界世界世", 4), vec!["世界", "世界", "世"]);
    assert_eq!(width("世a"), 3);
    assert_eq!(
        width("👋🏽a"),
        3,
        "an emoji with its skin tone is one wide character"
    );
    assert_eq!(rows("abcdefgh", 3), vec!["abc", "def", "gh"]);
    // A control inside is drawn as its picture, which has a width.
    assert_eq!(rows("a\x1bb", 10), vec!["a␛b"]);
    assert_eq!(rows("", 10), vec![""]);
}

#[test]
fn mentions_are_whole_words() {
    assert!(mentions("hey alice, you there?", "alice"));
    assert!(mentions("@Alice!", "alice"));
    assert!(!mentions("malice aforethought", "alice"));
    assert!(!mentions("alice_b", "alice"));
    assert!(!mentions("anything", ""));
}

#[test]
fn messages_elsewhere_count_as_unread_with_mentions_and_opening_clears_them() {
    let mut c = Chat::default();
    assert_eq!(c.open(1), Some(ChatRequest::Open(1)));
    assert_eq!(c.open(1), None, "already open");
    c.message(msg(1, 1, "bob", "here"), "alice");
    c.message(msg(2, 2, "bob", "psst"), "alice");
    c.message(msg(3, 2, "bob", "alice?"), "alice");
    c.message(msg(4, 3, "alice", "alice here"), "alice");
    assert_eq!(c.messages.len(), 1);
    assert_eq!(
        c.unread.get(&2),
        Some(&Unread {
            count: 2,
            mention: true
        })
    );
    assert_eq!(
        c.unread.get(&3),
        Some(&Unread {
            count: 1,
            mention: false
        }),
        "our own words are not a mention"
    );
    assert_eq!(c.open(2), Some(ChatRequest::Open(2)));
    assert!(c.messages.is_empty() && !c.unread.contains_key(&2));
}

#[test]
fn history_merges_in_order_and_scrolling_up_asks_for_older_pages() {
    let mut c = Chat::default();
    c.open(1);
    c.message(msg(50, 1, "bob", "live"), "me");
    c.history(1, (41..=50).map(|i| msg(i, 1, "bob", "x")).collect(), true);
    assert_eq!(c.messages.len(), 10, "no duplicate of the live one");
    assert!(c.more);
    assert!(c.messages.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(c.scroll_up(), None, "5 rows up: loaded ones remain");
    assert_eq!(c.scroll_up(), Some(ChatRequest::Older(1, 41)));
    assert_eq!(c.scroll_up(), None, "one request at a time");
    c.history(1, (31..=40).map(|i| msg(i, 1, "bob", "x")).collect(), false);
    assert_eq!(c.messages.first().map(|m| m.id), Some(31));
    assert!(!c.more && !c.loading_older);
    // A page for a channel no longer on screen is dropped.
    c.history(2, vec![msg(99, 2, "bob", "x")], true);
    assert_eq!(c.messages.len(), 20);
    c.scroll_down();
    assert_eq!(c.scroll, 10);
}

#[test]
fn the_input_line_keeps_a_draft_and_sends_non_blank_lines() {
    let mut c = Chat::default();
    c.type_char('x');
    assert_eq!(c.input, None, "closed: keys do not type");
    c.start_typing();
    for ch in "hi there".chars() {
        c.type_char(ch);
    }
    c.type_char('\x1b');
    c.backspace();
    c.stop_typing();
    assert_eq!((c.input.as_deref(), c.draft.as_str()), (None, "hi ther"));
    c.start_typing();
    assert_eq!(c.take_line().as_deref(), Some("hi ther"));
    assert_eq!(c.input.as_deref(), Some(""), "stays open, empty");
    c.type_char(' ');
    assert_eq!(c.take_line(), None, "blank is not sent");
}
