//! What a config error may show: never a secret. A TOML syntax error is named by file,
//! line and column with toml's message alone (toml's `Display` prints the offending line,
//! which may be `password = "…"`, or the line an unterminated string swallowed), and the
//! values of keys whose names suggest a secret are scrubbed from every message, from the
//! file or from a `DAS_*` variable, whatever the key's parser wrote.

use std::path::Path;

use super::ConfigError;

impl ConfigError {
    /// A TOML syntax error by line and column and toml's message alone. Not toml's
    /// `Display`: it prints the offending line, which may be `password = "…"` (or, for an
    /// unterminated string, the line that swallowed it). The message names what was
    /// expected, not what was found; secret values are scrubbed from it all the same, in
    /// case a later toml quotes the text.
    pub(super) fn syntax(file: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
        let start = error.span().map_or(0, |span| span.start);
        // A span off a character boundary (never seen) counts from the file's start.
        let before = text.get(..start).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            column,
            message: scrub(error.message().trim_end().to_owned(), &secret_lines(text)),
        }
    }
}

/// Whether a key's value is kept out of every error: `password`, and any key whose name
/// suggests a secret (a typo of one, or a key added later).
pub(super) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "credential",
        "private",
        "apikey",
        "api_key",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// The strings in `value` if `key` holds a secret, to scrub from its error.
pub(super) fn secrets_of(key: &str, value: &toml::Value) -> Vec<String> {
    fn strings(value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::String(text) => out.push(text.clone()),
            toml::Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
            toml::Value::Table(table) => table.values().for_each(|item| strings(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if is_secret_key(key) {
        strings(value, &mut out);
    }
    out
}

/// What follows `=` on each line of `text` whose key suggests a secret, with and without
/// its quotes: the text a syntax error must not repeat, read without a parser since the
/// file does not parse.
pub(super) fn secret_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !is_secret_key(key) {
            continue;
        }
        let value = value.trim();
        out.push(value.to_owned());
        out.push(value.trim_matches(['"', '\'']).to_owned());
    }
    out
}

/// `message` with each secret replaced. Secrets shorter than 4 characters are left: a
/// message holds no value of ours, and scrubbing every "a" would garble it.
pub(super) fn scrub(mut message: String, secrets: &[String]) -> String {
    const SHORTEST: usize = 4;
    for secret in secrets.iter().filter(|s| s.chars().count() >= SHORTEST) {
        // As written, and as `{:?}` quotes it (escapes differ).
        let quoted = format!("{secret:?}");
        message = message
            .replace(&quoted, "\"(not shown)\"")
            .replace(secret.as_str(), "(not shown)");
    }
    message
}
