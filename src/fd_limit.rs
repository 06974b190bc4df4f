//! The open-file limit, and how many calls it allows.
//!
//! Every call holds two UDP sockets (RTP and RTCP); SIP needs a descriptor
//! per TCP connection, and files are read for content. A distribution's
//! default soft limit (1,024) would cap the line near 500 calls and let a
//! flood of TCP connections starve calls of sockets, so the soft limit is
//! raised to the hard one at start and a reserve is kept back from calls.

use std::io;

/// Descriptors kept back from calls: SIP over TCP (inbound connections are
/// capped at 1,024 by the transport, outbound at 256), content files,
/// speech and the admin listener.
pub const RESERVED_FOR_SIP: u64 = 1024 + 256 + 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now
/// in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
        tracing::debug!(error = %io::Error::last_os_error(), "cannot raise the open-file limit");
    }
    Ok(limit.rlim_cur)
}

/// Calls the line can hold: one per RTP port pair, and no more than the
/// descriptors left after the reserve allow (two per call). Under a small
/// limit the reserve shrinks to a quarter of it, so calls still get most.
pub fn max_calls(port_pairs: usize, open_file_limit: u64) -> usize {
    let reserve = RESERVED_FOR_SIP.min(open_file_limit / 4);
    let by_files = open_file_limit.saturating_sub(reserve) / 2;
    port_pairs
        .min(usize::try_from(by_files).unwrap_or(usize::MAX))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_bounded_by_ports_and_descriptors() {
        assert_eq!(max_calls(8192, 1_048_576), 8192);
        assert_eq!(max_calls(8192, 1024), 384, "a quarter kept back");
        assert_eq!(
            max_calls(40_000, 65_536),
            (65_536 - RESERVED_FOR_SIP as usize) / 2
        );
        assert_eq!(max_calls(0, 65_536), 1);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let now = raise_open_file_limit().expect("getrlimit works");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, now);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
