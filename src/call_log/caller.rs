//! Who called, as the call log may keep it: the number only where the
//! operator opted in (`[log] caller_numbers`), otherwise a keyed hash.
//!
//! The hash is HMAC-SHA256 of the number under a random key kept beside the
//! log (`calls.key`), cut to 64 bits: the same caller hashes alike across
//! calls and restarts, so `stats` counts distinct callers, while nobody
//! without the key can test a number against the log (an unkeyed hash of a
//! phone number is undone by trying every number). Deleting the key makes
//! earlier hashes unlinkable to later ones. `ring` does the HMAC: it is
//! already built for rustls.

use ring::hmac;

use super::record::CallRecord;

/// Written for a withheld number, in `caller` and `caller_hash` alike.
pub const ANONYMOUS: &str = "anonymous";
/// The longest number kept: a From user part is the caller's to fill.
const MAX_NUMBER_CHARS: usize = 64;

/// The caller as the INVITE's From presented them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No number: `anonymous` (RFC 3323 §4.1.1.3), empty, or no URI at all.
    Withheld,
    /// The From URI's user part, e.g. `+441134960000` or `alice`.
    Number(String),
}

impl Presented {
    /// Reads a From header value: `"Name" <sip:user@host>;tag=…`,
    /// `sip:user@host;tag=…` or `<tel:+44…>`.
    pub fn from_header(from: &str) -> Presented {
        let uri = match (from.find('<'), from.rfind('>')) {
            (Some(open), Some(close)) if open < close => &from[open + 1..close],
            // Without brackets, parameters after `;` are the header's.
            _ => from.split(';').next().unwrap_or(""),
        };
        let uri = uri.trim();
        let lower = uri.to_ascii_lowercase();
        let rest = ["sips:", "sip:", "tel:"]
            .iter()
            .find_map(|scheme| lower.starts_with(scheme).then(|| &uri[scheme.len()..]))
            .unwrap_or(uri);
        let (user, host) = match rest.split_once('@') {
            Some((user, host)) => (user, host),
            // `tel:` has no host; a bare `sip:host` has no user.
            None if lower.starts_with("tel:") => (rest, ""),
            None => ("", rest),
        };
        // User parameters (`;phone-context=…`) are not part of the number.
        let user = user.split(';').next().unwrap_or("").trim();
        let number: String = user
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NUMBER_CHARS)
            .collect();
        if number.is_empty()
            || number.eq_ignore_ascii_case(ANONYMOUS)
            || host.to_ascii_lowercase().starts_with("anonymous.invalid")
        {
            Presented::Withheld
        } else {
            Presented::Number(number)
        }
    }
}

/// Writes the caller into a record as the operator allows.
pub struct CallerPrivacy {
    keep_numbers: bool,
    key: hmac::Key,
}

impl CallerPrivacy {
    /// `key`: the install's secret (any length; 32 random bytes in practice).
    pub fn new(keep_numbers: bool, key: &[u8]) -> CallerPrivacy {
        CallerPrivacy {
            keep_numbers,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Sets `caller` (only with the opt-in) and `caller_hash`.
    pub fn apply(&self, presented: &Presented, record: &mut CallRecord) {
        let (number, hash) = match presented {
            Presented::Withheld => (ANONYMOUS.to_owned(), ANONYMOUS.to_owned()),
            Presented::Number(number) => (number.clone(), self.hash(number)),
        };
        record.caller = self.keep_numbers.then_some(number);
        record.caller_hash = Some(hash);
    }

    /// The caller as the line's own log may show them: the number with the
    /// opt-in, else the hash the call log holds (so a log line and a call
    /// record can be matched without the number being written anywhere).
    pub fn shown(&self, presented: &Presented) -> String {
        match presented {
            Presented::Withheld => ANONYMOUS.to_owned(),
            Presented::Number(number) if self.keep_numbers => number.clone(),
            Presented::Number(number) => format!("hash:{}", self.hash(number)),
        }
    }

    /// 64 bits as 16 hex digits: collisions among a parish's callers are
    /// out of reach, and the line stays short.
    fn hash(&self, number: &str) -> String {
        let tag = hmac::sign(&self.key, number.as_bytes());
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_is_the_from_uris_user_part() {
        for (from, expected) in [
            (
                "\"Alice\" <sip:+441134960000@trunk.example;user=phone>;tag=1",
                "+441134960000",
            ),
            ("<sip:alice@192.0.2.1:5060>;tag=x", "alice"),
            ("sip:01134960000@192.0.2.1;tag=x", "01134960000"),
            ("<tel:+441134960000;phone-context=x>", "+441134960000"),
            ("<sips:bob;x=y@example.com>", "bob"),
        ] {
            assert_eq!(
                Presented::from_header(from),
                Presented::Number(expected.to_owned()),
                "{from}"
            );
        }
    }

    #[test]
    fn the_log_shows_a_number_only_with_the_opt_in() {
        let number = Presented::Number("+441134960000".to_owned());
        let hidden = CallerPrivacy::new(false, b"key");
        let shown = hidden.shown(&number);
        assert!(
            shown.starts_with("hash:") && !shown.contains("4960000"),
            "{shown}"
        );
        let mut record = record();
        hidden.apply(&number, &mut record);
        assert_eq!(Some(&shown[5..]), record.caller_hash.as_deref());
        assert_eq!(
            CallerPrivacy::new(true, b"key").shown(&number),
            "+441134960000"
        );
        assert_eq!(hidden.shown(&Presented::Withheld), ANONYMOUS);
    }

    #[test]
    fn withheld_numbers_are_anonymous() {
        for from in [
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1",
            "<sip:anonymous@trunk.example>;tag=1",
            "<sip:ANONYMOUS@192.0.2.1>",
            "<sip:192.0.2.1>;tag=1",
            "",
            "<>",
            "\"x\" <sip:someone@anonymous.invalid>",
        ] {
            assert_eq!(Presented::from_header(from), Presented::Withheld, "{from}");
        }
    }

    #[test]
    fn a_long_or_odd_number_is_bounded_and_never_panics() {
        let from = format!("<sip:{}\u{7}é@h>", "9".repeat(10_000));
        let Presented::Number(number) = Presented::from_header(&from) else {
            panic!("a number");
        };
        assert_eq!(number.chars().count(), MAX_NUMBER_CHARS);
        for from in ["<", ">", "><", "sip:@", "tel:", "<sip:é@>", "\"<sip:a@b\""] {
            let _ = Presented::from_header(from);
        }
    }

    fn record() -> CallRecord {
        let (record, _) = super::super::record::RecordBuilder::new(
            chrono::DateTime::UNIX_EPOCH,
            std::time::Instant::now(),
            crate::media::Codec::Pcmu,
        )
        .finish(
            crate::endpoint::EndReason::CallerHungUp,
            std::time::Instant::now(),
        );
        record
    }

    #[test]
    fn numbers_are_kept_only_with_the_opt_in_and_hashed_with_the_key() {
        let number = Presented::Number("+441134960000".to_owned());
        let mut without = record();
        CallerPrivacy::new(false, b"key one").apply(&number, &mut without);
        assert_eq!(without.caller, None);
        let hash = without.caller_hash.clone().unwrap();
        assert_eq!(hash.len(), 16);
        assert!(
            !without.to_line().contains("4960000"),
            "{}",
            without.to_line()
        );

        let mut with = record();
        CallerPrivacy::new(true, b"key one").apply(&number, &mut with);
        assert_eq!(with.caller.as_deref(), Some("+441134960000"));
        assert_eq!(with.caller_hash.as_ref(), Some(&hash), "the same hash");

        let mut other_key = record();
        CallerPrivacy::new(false, b"key two").apply(&number, &mut other_key);
        assert_ne!(other_key.caller_hash.as_ref(), Some(&hash));

        let mut withheld = record();
        CallerPrivacy::new(false, b"key one").apply(&Presented::Withheld, &mut withheld);
        assert_eq!(withheld.caller, None);
        assert_eq!(withheld.caller_hash.as_deref(), Some(ANONYMOUS));
    }
}
