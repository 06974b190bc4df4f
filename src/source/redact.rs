//! How a source URL is shown: in errors, logs, `check` and `menu` output,
//! the status page. `https://user:secret@host/path?token=abc#x` is shown as
//! `https://host/path`: a parish's content host may put credentials in the
//! user part and tokens (signed CDN links, podcast-host keys) in the query,
//! and a log is read, pasted into emails and kept far longer than a secret
//! should live. The path stays, since it is what tells two services apart.
//!
//! Textual rather than through `url::Url`: it must also redact what does
//! not parse (a bad URL in a config or schedule is exactly what an error
//! quotes), and must never fail.

use std::borrow::Cow;
use std::fmt;

/// `url` with no user part, query or fragment; text that is not a URL
/// loses the same parts as best it can (everything up to an `@` before the
/// first `/`, and from the first `?` or `#`).
pub fn redact_url(url: &str) -> String {
    Redacted(url).to_string()
}

/// For a value that is a URL or a file name (a schedule's `file`, a feed's
/// enclosure): a URL redacted, a name as written (`a?b.mp3` is a name, and
/// an error about it should quote it whole).
pub fn redact_if_url(text: &str) -> Cow<'_, str> {
    if text.contains("://") {
        Cow::Owned(redact_url(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// Displays a URL as [`redact_url`] does, without allocating first:
/// `tracing::warn!(url = %Redacted(&url), …)`.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0.trim();
        // Query and fragment go first: an `@` or `/` inside them means nothing.
        let url = url.split(['?', '#']).next().unwrap_or_default();
        let (scheme, rest) = match url.find("://") {
            Some(i) => url.split_at(i + 3),
            None => ("", url),
        };
        // The authority ends at the path; WHATWG parsers take `\` as `/` too.
        let authority_end = rest.find(['/', '\\']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        // The last `@` ends the user part: a password may hold an unencoded `@`.
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        write!(f, "{scheme}{host}{path}")
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_and_fragment_are_dropped() {
        for (url, shown) in [
            (
                "https://user:secret@host.example/data.json?token=abc",
                "https://host.example/data.json",
            ),
            (
                "https://host.example/a/b.mp3#t=10",
                "https://host.example/a/b.mp3",
            ),
            ("http://u@127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
            ("https://u:p@ss@host/x", "https://host/x"),
            ("https://u:p@host?token=abc", "https://host"),
            ("https://u:p@host#frag@x", "https://host"),
            ("HTTPS://Host.Example/Path/", "HTTPS://Host.Example/Path/"),
            ("https://[::1]:8443/feed", "https://[::1]:8443/feed"),
            ("https://host/a@b/c.mp3", "https://host/a@b/c.mp3"),
            ("https://u:p@host\\x?k=v", "https://host\\x"),
            ("  https://u:p@host/x  ", "https://host/x"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn text_that_is_not_a_url_is_redacted_too() {
        assert_eq!(redact_url("user:secret@host/x?token=abc"), "host/x");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("ftp://u:p@x/y?z"), "ftp://x/y");
        assert_eq!(redact_url(""), "");
        assert_eq!(redact_url("?token=abc"), "");
        assert_eq!(redact_url("https://"), "https://");
    }

    #[test]
    fn file_names_are_quoted_whole_and_urls_redacted() {
        assert_eq!(redact_if_url("me@home?.mp3"), "me@home?.mp3");
        assert_eq!(redact_if_url("ftp://u:p@x/y.mp3?k"), "ftp://x/y.mp3");
    }

    #[test]
    fn debug_quotes_the_redacted_form() {
        let url = "https://u:secret@h/x?token=abc";
        assert_eq!(format!("{:?}", Redacted(url)), "\"https://h/x\"");
    }
}
