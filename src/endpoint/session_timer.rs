//! RFC 4028 session timers, as a UAS that lets the caller refresh.
//!
//! When a caller offers a session timer (`Session-Expires`, with
//! `Supported: timer`), the line agrees with `refresher=uac`: the caller
//! re-INVITEs before the interval ends, and if no refresh comes the line
//! sends BYE a little before expiry (§10: the minimum of 32 s and a third of
//! the interval). A call whose far end vanished therefore ends on time even
//! when its media gives no sign.
//!
//! The line never refreshes sessions itself. A request that names the UAS as
//! refresher, or whose sender does not support timers (a proxy added the
//! header), is answered as a UA without the extension answers: no
//! `Session-Expires` in the 2xx, which §7.2 and §8.1 read as "no expiry";
//! `max_call_duration` still bounds such a call.

use std::time::{Duration, Instant};

use crate::sip::message;

/// Our `Min-SE` (§5: at least 90 s; we take the RFC's recommended floor).
pub const MIN_SE: Duration = Duration::from_secs(90);

/// What to do about a request's session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimer {
    /// No timer for this session.
    Off,
    /// Too short: `422 Session Interval Too Small` with our `Min-SE` (§9).
    TooSmall,
    /// A timer the caller refreshes.
    Uac { interval: Duration },
}

impl SessionTimer {
    /// Reads `Session-Expires`, `Min-SE` and `Supported` of an INVITE.
    pub fn of_request(headers: &rsip::Headers) -> SessionTimer {
        let Some(value) = message::header_value(headers, "Session-Expires") else {
            return SessionTimer::Off;
        };
        let mut parts = value.split(';');
        let Some(interval) = parts
            .next()
            .and_then(|delta| delta.trim().parse::<u32>().ok())
            .map(|secs| Duration::from_secs(u64::from(secs)))
        else {
            return SessionTimer::Off;
        };
        let refresher = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("refresher")
                .then(|| value.trim().to_ascii_lowercase())
        });
        let supported = message::header_values(headers, "Supported")
            .flat_map(|v| v.split(','))
            .any(|option| option.trim().eq_ignore_ascii_case("timer"));
        if !supported || refresher.as_deref() == Some("uas") {
            return SessionTimer::Off;
        }
        if interval < MIN_SE {
            return SessionTimer::TooSmall;
        }
        SessionTimer::Uac { interval }
    }

    /// Headers for the 2xx that agrees to it (§9: `Require: timer` with
    /// `refresher=uac`).
    pub fn response_headers(self) -> Vec<(&'static str, String)> {
        match self {
            SessionTimer::Uac { interval } => vec![
                (
                    "Session-Expires",
                    format!("{};refresher=uac", interval.as_secs()),
                ),
                ("Require", "timer".to_owned()),
            ],
            _ => Vec::new(),
        }
    }

    /// When to give up on a refresh and send BYE, for a 2xx sent at `now`.
    pub fn expiry(self, now: Instant) -> Option<Instant> {
        match self {
            SessionTimer::Uac { interval } => {
                Some(now + interval - (interval / 3).min(Duration::from_secs(32)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::make_header;

    fn headers(list: &[(&str, &str)]) -> rsip::Headers {
        let mut headers = rsip::Headers::default();
        for (name, value) in list {
            headers.push(make_header(name, *value));
        }
        headers
    }

    #[test]
    fn a_caller_that_refreshes_gets_its_interval() {
        let offered = headers(&[
            ("Session-Expires", "1800;refresher=uac"),
            ("Supported", "100rel, timer"),
        ]);
        let timer = SessionTimer::of_request(&offered);
        assert_eq!(
            timer,
            SessionTimer::Uac {
                interval: Duration::from_secs(1800)
            }
        );
        let t0 = Instant::now();
        assert_eq!(timer.expiry(t0), Some(t0 + Duration::from_secs(1800 - 32)));
        assert_eq!(
            timer.response_headers(),
            vec![
                ("Session-Expires", "1800;refresher=uac".to_owned()),
                ("Require", "timer".to_owned())
            ]
        );
        // Compact forms, no refresher named: we elect the caller.
        let compact = headers(&[("x", "90"), ("k", "timer")]);
        let timer = SessionTimer::of_request(&compact);
        assert_eq!(
            timer,
            SessionTimer::Uac {
                interval: Duration::from_secs(90)
            }
        );
        // A third of a short interval is less than 32 s.
        assert_eq!(timer.expiry(t0), Some(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn too_small_intervals_get_422() {
        let offered = headers(&[("Session-Expires", "30"), ("Supported", "timer")]);
        assert_eq!(SessionTimer::of_request(&offered), SessionTimer::TooSmall);
    }

    #[test]
    fn requests_that_would_make_us_refresh_get_no_timer() {
        for offered in [
            headers(&[
                ("Session-Expires", "1800;refresher=uas"),
                ("Supported", "timer"),
            ]),
            headers(&[("Session-Expires", "1800")]),
            headers(&[("Session-Expires", "soon"), ("Supported", "timer")]),
            headers(&[("Supported", "timer")]),
        ] {
            let timer = SessionTimer::of_request(&offered);
            assert_eq!(timer, SessionTimer::Off, "{offered:?}");
            assert!(timer.response_headers().is_empty());
            assert_eq!(timer.expiry(Instant::now()), None);
        }
    }
}
