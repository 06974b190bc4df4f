//! Who goes first when the machine is busy: the pacer's media threads ask
//! for nice −10 under the normal scheduler, so they keep their 20 ms
//! schedule ahead of SIP, logging and decoding; the threads decoding whole
//! services in the background take nice +10, so a service an hour long
//! being encoded never delays a caller's greeting being prepared. Not
//! real-time scheduling (`SCHED_FIFO`): a real-time thread that ever spun
//! would starve the SIP loop and the machine with it.

/// The niceness asked for: well ahead of ordinary work, short of the
/// values system daemons use.
const MEDIA_NICE: libc::c_int = -10;
/// The SIP loop: behind the media threads, ahead of ordinary work, so a
/// caller's INVITE and ACK are answered promptly on a busy machine.
const SIP_NICE: libc::c_int = -5;
/// Bulk decoding: behind everything a caller waits for.
const BACKGROUND_NICE: libc::c_int = 10;

/// Sets the calling thread's niceness; `Err` when not allowed.
fn set_this_thread(nice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscalls on the calling thread; `setpriority` with a
    // thread id applies to that thread alone on Linux.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lowers the calling thread's priority (always allowed).
pub fn lower_this_thread() {
    if let Err(error) = set_this_thread(BACKGROUND_NICE) {
        tracing::debug!(%error, "cannot lower a decoding thread's priority");
    }
}

/// Raises the SIP loop's thread where allowed; the threads it starts
/// later inherit its niceness, so each of them sets its own (see
/// [`ordinary_this_thread`]).
pub fn raise_sip_thread() {
    match set_this_thread(SIP_NICE) {
        Ok(()) => tracing::debug!(nice = SIP_NICE, "the SIP loop runs ahead of other work"),
        Err(error) => tracing::debug!(%error, "the SIP loop runs at normal priority"),
    }
}

/// Back to the ordinary niceness: for the runtime's worker and blocking
/// threads, which would otherwise inherit the SIP loop's.
pub fn ordinary_this_thread() {
    if let Err(error) = set_this_thread(0) {
        tracing::debug!(%error, "cannot set a runtime thread's priority");
    }
}

/// Raises the calling thread's priority where allowed (root, or
/// `CAP_SYS_NICE`); `report` logs the outcome (once per engine).
pub fn raise_this_thread(report: bool) {
    let result = set_this_thread(MEDIA_NICE);
    if !report {
        return;
    }
    match result {
        Ok(()) => tracing::debug!(nice = MEDIA_NICE, "media threads run ahead of other work"),
        Err(error) => tracing::info!(
            %error,
            "media threads run at normal priority (raising it needs root or CAP_SYS_NICE)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_thread_is_nicer_or_left_alone_never_lowered() {
        // SAFETY: reads the calling thread's own niceness.
        let niceness =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        std::thread::spawn(move || {
            let before = niceness();
            raise_this_thread(false);
            let after = niceness();
            assert!(
                after == MEDIA_NICE || after == before,
                "{before} -> {after}"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_lowered_thread_is_nicer_than_the_rest() {
        // SAFETY: reads the calling thread's own niceness.
        let niceness =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        std::thread::spawn(move || {
            let before = niceness();
            lower_this_thread();
            assert_eq!(niceness(), BACKGROUND_NICE.max(before));
        })
        .join()
        .unwrap();
    }
}
