//! The terminal's modes: raw input, the alternate screen, focus events and — where the
//! terminal speaks the kitty keyboard protocol — key release reporting. Entered once and
//! restored exactly once, whichever comes first: the guard's drop, or the panic hook (so an
//! error never leaves the user's shell without echo or stuck on the alternate screen).

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::event::{
    DisableFocusChange, EnableFocusChange, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
    supports_keyboard_enhancement,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// The terminal is in our modes (set by `enter`, cleared by the first `restore`).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Keyboard enhancement flags were pushed and must be popped.
static ENHANCED: AtomicBool = AtomicBool::new(false);

pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// Restores the terminal when dropped.
pub struct TerminalGuard(());

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Switch the terminal over. Returns it, its guard, and whether key releases will be reported.
pub fn enter() -> io::Result<(Tui, TerminalGuard, bool)> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let guard = TerminalGuard(());
    // Asks the terminal (CSI ? u); terminals that don't know the protocol answer only the
    // device-attributes query that follows, so this does not hang.
    let releases = supports_keyboard_enhancement().unwrap_or(false);
    let mut out = io::stdout();
    execute!(out, EnterAlternateScreen, EnableFocusChange, Hide)?;
    if releases {
        // Escape codes for every key: without them Enter/Tab/Backspace releases arrive as
        // presses; alternate keys give `?` rather than shift+`/`.
        execute!(
            out,
            PushKeyboardEnhancementFlags(
                KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES
                    | KeyboardEnhancementFlags::REPORT_EVENT_TYPES
                    | KeyboardEnhancementFlags::REPORT_ALL_KEYS_AS_ESCAPE_CODES
                    | KeyboardEnhancementFlags::REPORT_ALTERNATE_KEYS
            )
        )?;
        ENHANCED.store(true, Ordering::SeqCst);
    }
    let terminal = Terminal::new(CrosstermBackend::new(out))?;
    Ok((terminal, guard, releases))
}

/// Put the terminal back as we found it. Idempotent; errors are ignored (there is nobody left
/// to tell, and the remaining steps should still run).
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if ENHANCED.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, PopKeyboardEnhancementFlags);
    }
    let _ = execute!(out, DisableFocusChange, LeaveAlternateScreen, Show);
    let _ = disable_raw_mode();
}

/// Restore the terminal (and stderr) before the default hook prints the panic, so the message
/// is readable and the shell usable. Installed once.
fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        tracing::error!(panic = %info, "panic");
        super::logging::restore_stderr();
        previous(info);
    }));
}
