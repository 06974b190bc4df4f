//! What a process holds, read from `/proc`: resident memory, open
//! descriptors and the UDP ports of its sockets. For tests that check the
//! line returns to idle after a flood or a soak.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Resident memory (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// What each open descriptor points at (`socket:[123]`, a path, a pipe).
pub fn fds(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd dir")
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".to_owned());
            format!("{} -> {target}", e.file_name().to_string_lossy())
        })
        .collect();
    out.sort();
    out
}

/// How many descriptors are open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd dir")
        .count()
}

/// The local ports of the UDP sockets (IPv4 and IPv6) the process holds.
pub fn udp_ports(pid: u32) -> Vec<u16> {
    let inodes: HashSet<String> = fds(pid)
        .iter()
        .filter_map(|f| f.split("socket:[").nth(1))
        .map(|i| i.trim_end_matches(']').to_owned())
        .collect();
    let mut ports = Vec::new();
    for table in ["udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st queues tr retrnsmt uid timeout inode
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            if !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports.sort_unstable();
    ports
}

/// Resident memory once it has stopped moving (two readings half a second
/// apart within 256 KiB), or the last reading after `within`.
pub fn settled_rss_kib(pid: u32, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = rss_kib(pid);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_kib(pid);
        if now.abs_diff(last) <= 256 || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}
