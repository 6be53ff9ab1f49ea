//! The chat pane's state and rules. Pure: changed by [`super::update`], read by
//! [`super::view`].
//!
//! **A message is data, never terminal input**: every character of a message or a name goes
//! through [`sanitize`] ([`crate::text`]) before it is drawn. Widths come from Unicode (wide
//! characters and emoji take two cells).
//! Must never hand a message's characters to the terminal unsanitised.

use std::collections::BTreeMap;

use cromulent_protocol::{ChannelId, ChatMessage, MessageId};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

pub use crate::text::{mentions, sanitize};

/// Longest message the input line takes, in characters (the server's default limit).
pub const MAX_INPUT_CHARS: usize = 2_000;
/// Rows one page-up / page-down moves.
pub const SCROLL_STEP: usize = 5;

/// New messages in a channel not on screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    pub count: u32,
    /// One of them mentions us.
    pub mention: bool,
}

/// What the chat pane shows and holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chat {
    /// The channel on screen (the selected one).
    pub channel: Option<ChannelId>,
    /// Its messages as far back as loaded, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Older messages exist on the server.
    pub more: bool,
    /// A page of older messages was asked for and has not come.
    pub loading_older: bool,
    /// Rows scrolled up from the newest (0: following the newest).
    pub scroll: usize,
    pub unread: BTreeMap<ChannelId, Unread>,
    /// The input line while it is open (keys type into it); `None` when closed.
    pub input: Option<String>,
    /// What was typed when the input line was left, given back when it opens again.
    pub draft: String,
    /// The local time zone's offset from UTC, seconds, for message times (0: UTC).
    pub utc_offset_secs: i32,
}

/// What the chat needs the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRequest {
    /// Follow `channel` and load its newest page.
    Open(ChannelId),
    /// Load the page before this message.
    Older(ChannelId, MessageId),
}

impl Chat {
    /// Show `channel`; the requests to make when it is a change.
    pub fn open(&mut self, channel: ChannelId) -> Option<ChatRequest> {
        if self.channel == Some(channel) {
            return None;
        }
        self.channel = Some(channel);
        self.messages.clear();
        self.more = false;
        self.loading_older = false;
        self.scroll = 0;
        self.unread.remove(&channel);
        Some(ChatRequest::Open(channel))
    }

    /// Connected again: follow the channel on screen and fetch what was missed.
    pub fn resync(&self) -> Option<ChatRequest> {
        self.channel.map(ChatRequest::Open)
    }

    /// A live message; `me` is our name, for mentions.
    pub fn message(&mut self, m: ChatMessage, me: &str) {
        if Some(m.channel) != self.channel {
            let unread = self.unread.entry(m.channel).or_default();
            unread.count += 1;
            unread.mention |= m.user != me && mentions(&m.text, me);
            return;
        }
        if let Err(at) = self.messages.binary_search_by_key(&m.id, |x| x.id) {
            self.messages.insert(at, m);
            if self.scroll > 0 {
                // Reading older messages: keep them where they are.
                self.scroll += 1;
            }
        }
    }

    /// A page of history.
    pub fn history(&mut self, channel: ChannelId, page: Vec<ChatMessage>, more: bool) {
        if Some(channel) != self.channel {
            return;
        }
        let older = self.loading_older;
        self.loading_older = false;
        let oldest_before = self.messages.first().map(|m| m.id);
        for m in page {
            if let Err(at) = self.messages.binary_search_by_key(&m.id, |x| x.id) {
                self.messages.insert(at, m);
            }
        }
        // Whether older ones exist is the word of the page that reached furthest back.
        if older || oldest_before.is_none_or(|id| self.messages.first().is_some_and(|m| m.id < id))
        {
            self.more = more;
        }
    }

    /// Scroll towards older messages; asks for an older page once the loaded ones run out.
    pub fn scroll_up(&mut self) -> Option<ChatRequest> {
        self.scroll += SCROLL_STEP;
        let channel = self.channel?;
        // Every message takes at least one row: past that many rows, we are at the top.
        if self.scroll >= self.messages.len() && self.more && !self.loading_older {
            let first = self.messages.first()?.id;
            self.loading_older = true;
            return Some(ChatRequest::Older(channel, first));
        }
        None
    }

    pub fn scroll_down(&mut self) {
        self.scroll = self.scroll.saturating_sub(SCROLL_STEP);
    }

    /// Open the input line (with the draft).
    pub fn start_typing(&mut self) {
        if self.input.is_none() {
            self.input = Some(std::mem::take(&mut self.draft));
        }
    }

    /// Leave the input line, keeping what was typed.
    pub fn stop_typing(&mut self) {
        if let Some(text) = self.input.take() {
            self.draft = text;
        }
    }

    /// A character typed into the open input line.
    pub fn type_char(&mut self, c: char) {
        if let Some(text) = &mut self.input
            && text.chars().count() < MAX_INPUT_CHARS
            && !c.is_control()
        {
            text.push(c);
        }
    }

    pub fn backspace(&mut self) {
        if let Some(text) = &mut self.input {
            text.pop();
        }
    }

    /// Enter: the text to send (the line is emptied and stays open), if there is any.
    pub fn take_line(&mut self) -> Option<String> {
        let text = self.input.as_mut()?;
        if text.trim().is_empty() {
            return None;
        }
        self.scroll = 0;
        Some(std::mem::take(text))
    }
}

/// Display width of already sanitised text, as ratatui measures it (emoji sequences as one).
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// A message's text as rows of at most `width` cells: its own lines, each sanitised and
/// wrapped (at spaces where possible, else inside a word; a wide character never split).
pub fn rows(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = sanitize(line);
        let mut row = String::new();
        let mut row_width = 0;
        for word in line.split_inclusive(' ') {
            let w = self::width(word);
            // A word's trailing space may hang past the edge: the row is trimmed.
            let visible = self::width(word.trim_end_matches(' '));
            if row_width + visible <= width {
                row.push_str(word);
                row_width += w;
                continue;
            }
            if row_width > 0 && visible <= width {
                out.push(std::mem::take(&mut row).trim_end().to_owned());
                row_width = 0;
                row.push_str(word);
                row_width += w;
                continue;
            }
            // A word longer than the row: break it by characters.
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if row_width + cw > width {
                    out.push(std::mem::take(&mut row));
                    row_width = 0;
                }
                row.push(c);
                row_width += cw;
            }
        }
        out.push(row.trim_end().to_owned());
    }
    out
}

#[cfg(test)]
mod tests;
