//! Shared parsing for the `kind:argument` strings that name audio sources and sinks on the
//! command line (`tone:440`, `wav:voice.wav`, `silence`, `null`).
//!
//! Only syntax lives here; each spec type ([`super::SourceSpec`], [`super::SinkSpec`]) decides
//! which kinds exist. Parsing never touches the file system: a spec names a file, opening it is
//! a separate, fallible step.

/// Why a source or sink spec was rejected. Every message says what was expected, because these
/// strings come straight from a user's command line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Nothing (or only whitespace) was given.
    #[error("empty {what} spec; expected {expected}")]
    Empty {
        /// `"source"` or `"sink"`.
        what: &'static str,
        /// The accepted forms, for the message.
        expected: &'static str,
    },
    /// The part before `:` is not a known kind.
    #[error("unknown {what} kind `{kind}`; expected {expected}")]
    UnknownKind {
        /// `"source"` or `"sink"`.
        what: &'static str,
        /// What the user wrote.
        kind: String,
        /// The accepted forms, for the message.
        expected: &'static str,
    },
    /// A kind that needs an argument got none (`wav:`, `tone`).
    #[error("`{kind}` needs {needs}")]
    MissingArgument {
        /// The kind that was named.
        kind: &'static str,
        /// What the argument should be, with an example.
        needs: &'static str,
    },
    /// A kind that takes no argument got one (`silence:5`).
    #[error("`{kind}` takes no argument, got `{kind}:{arg}`")]
    UnexpectedArgument {
        /// The kind that was named.
        kind: &'static str,
        /// The argument that should not be there.
        arg: String,
    },
    /// A tone frequency that is not a number (`tone:abc`).
    #[error("tone frequency `{value}` is not a number; expected e.g. `tone:440`")]
    NotANumber {
        /// What the user wrote.
        value: String,
    },
    /// A tone frequency outside what 48 kHz audio (and Opus) can carry.
    #[error("tone frequency {hz} Hz is out of range; expected {min}..={max} Hz")]
    FrequencyOutOfRange {
        /// The parsed value.
        hz: f64,
        /// Lowest accepted frequency.
        min: f64,
        /// Highest accepted frequency.
        max: f64,
    },
}

/// Splits `kind:argument` at the first `:` after trimming surrounding whitespace. The argument
/// is `None` when there is no `:` at all and `Some("")` for a trailing `:`; callers treat both as
/// "missing" where an argument is required. Splitting at the *first* colon keeps paths with
/// colons (`wav:C:\clips\a.wav`) intact.
pub(crate) fn split_kind(spec: &str) -> (&str, Option<&str>) {
    let spec = spec.trim();
    match spec.split_once(':') {
        Some((kind, arg)) => (kind, Some(arg)),
        None => (spec, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_colon_only() {
        assert_eq!(split_kind(" wav:C:\\a.wav "), ("wav", Some("C:\\a.wav")));
        assert_eq!(split_kind("null"), ("null", None));
        assert_eq!(split_kind("wav:"), ("wav", Some("")));
    }
}
