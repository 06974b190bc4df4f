//! Splits an authentication header value into challenges and their parameters
//! (RFC 3261 §25.1 `challenge` and `auth-param`, RFC 7235 §4.1 for comma-joined challenges).
//! It reads syntax only. `super` gives the parameters their meaning.

use super::{AuthError, MAX_CHALLENGE_LEN};

/// One challenge as written: its scheme and its parameters, names as sent.
#[derive(Debug)]
pub(super) struct RawChallenge<'a> {
    pub(super) scheme: &'a str,
    pub(super) params: Vec<(&'a str, String)>,
}

/// Splits a header value into challenges (RFC 3261 §25.1 `challenge`, RFC 7235 §4.1).
///
/// Lenient where servers differ: spaces around `=` and `,`, empty list elements, and unquoted
/// values holding `/`, `=` or `+` (some servers send base64 nonces bare). A new challenge
/// starts where a token is followed by something other than `=`.
///
/// Every delimiter is ASCII. A byte index stopped on one is therefore a character boundary,
/// and no slice can panic.
pub(super) fn split_challenges(value: &str) -> Result<Vec<RawChallenge<'_>>, AuthError> {
    if value.len() > MAX_CHALLENGE_LEN {
        return Err(AuthError::TooLong {
            len: value.len(),
            max: MAX_CHALLENGE_LEN,
        });
    }
    let mut s = Scanner { s: value, pos: 0 };
    let mut out = Vec::new();
    s.skip_separators();
    while !s.at_end() {
        let scheme = s.token();
        if scheme.is_empty() {
            return Err(s.malformed("expected an auth scheme"));
        }
        let mut params = Vec::new();
        loop {
            s.skip_separators();
            if s.at_end() {
                break;
            }
            let start = s.pos;
            let name = s.token();
            if name.is_empty() {
                return Err(s.malformed("expected a parameter name"));
            }
            s.skip_lws();
            if s.peek() != Some(b'=') {
                // The token names the next challenge's scheme.
                s.pos = start;
                break;
            }
            s.pos += 1;
            s.skip_lws();
            let param_value = if s.peek() == Some(b'"') {
                s.quoted_string()?
            } else {
                s.bare_value().to_owned()
            };
            params.push((name, param_value));
            s.skip_lws();
            match s.peek() {
                None | Some(b',') => {}
                Some(_) => return Err(s.malformed("expected a comma between parameters")),
            }
        }
        out.push(RawChallenge { scheme, params });
    }
    Ok(out)
}

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn malformed(&self, reason: &'static str) -> AuthError {
        AuthError::Malformed {
            at: self.pos,
            reason,
        }
    }

    /// Linear white space, folded lines included (RFC 3261 §25.1 LWS).
    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// White space and empty list elements (`a=1, , b=2`).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b',')) {
            self.pos += 1;
        }
    }

    /// RFC 3261 §25.1 `token`.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// An unquoted value: everything up to white space, a comma or a quote.
    fn bare_value(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b'"'))
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// A quoted-string starting at `"`, with quoted-pairs unescaped.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        let open = self.pos;
        let mut out = String::new();
        let mut chars = self.s[open + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = open + 1 + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(AuthError::Malformed {
            at: open,
            reason: "unterminated quoted string",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_names_as_sent_and_unescapes_values() {
        let raws =
            split_challenges(r#"Digest Realm="a\"b", nonce=x/y==, Basic realm="z""#).unwrap();
        assert_eq!(raws.len(), 2);
        assert_eq!(raws[0].scheme, "Digest");
        assert_eq!(
            raws[0].params,
            vec![
                ("Realm", "a\"b".to_string()),
                ("nonce", "x/y==".to_string())
            ]
        );
        assert_eq!(raws[1].scheme, "Basic");
        assert_eq!(raws[1].params, vec![("realm", "z".to_string())]);
    }

    #[test]
    fn scheme_without_params_and_empty_elements() {
        let raws = split_challenges(" , Negotiate , ,Digest realm=\"r\",, nonce=\"\"").unwrap();
        assert_eq!(raws.len(), 2);
        assert_eq!(raws[0].scheme, "Negotiate");
        assert!(raws[0].params.is_empty());
        assert_eq!(
            raws[1].params,
            vec![("realm", "r".to_string()), ("nonce", String::new())]
        );
    }

    #[test]
    fn unterminated_escape_at_the_end_is_malformed() {
        assert_eq!(
            split_challenges("Digest realm=\"abc\\").unwrap_err(),
            AuthError::Malformed {
                at: 13,
                reason: "unterminated quoted string"
            }
        );
    }
}
