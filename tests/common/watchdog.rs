//! A deadline for a whole test binary: a test that hangs (a deadlock, a peer
//! that never answers) fails loudly instead of holding CI until its own
//! time-out, and takes the lines it started with it.

use std::sync::{Mutex, Once};
use std::time::Duration;

/// Longer than any test binary takes on a loaded 2-core machine, plus the
/// soak's own length when `DAS_SOAK_SECONDS` asks for more.
const LIMIT: Duration = Duration::from_secs(15 * 60);

/// The lines started in this process, to kill before exiting.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static STARTED: Once = Once::new();

/// Arms the watchdog (once per process) and records `pid` for it to kill.
pub fn watch(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    STARTED.call_once(|| {
        let soak = std::env::var("DAS_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        let limit = LIMIT + soak;
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            eprintln!(
                "watchdog: this test binary is still running after {} s; a test hangs. \
                 Killing its lines and exiting.",
                limit.as_secs()
            );
            for pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                // SAFETY: kill(2) on a pid we spawned; at worst it is gone.
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
            }
            std::process::exit(101);
        });
    });
}
