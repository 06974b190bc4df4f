//! Kamailio as the dispatcher in front of several lines, started from the
//! repository's own config (`deploy/kamailio/kamailio.cfg`, the `scale`
//! profile's) on loopback. The repository's `dispatcher.list` is the
//! template: its destinations, in order, become the test's lines.
//!
//! Like [`super::kamailio::Kamailio`]: its own port (free for UDP, checked
//! with `ss`), temp dir and `ctl` socket, and a process group of its own
//! so [`Drop`] ends its workers too.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kamailio::{free_udp_tcp_port, is_listening};
use super::repo;

/// How long kamailio may take to start answering its ctl socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub fn config() -> PathBuf {
    repo().join("deploy/kamailio/kamailio.cfg")
}

pub fn list_template() -> PathBuf {
    repo().join("deploy/kamailio/dispatcher.list")
}

/// The repository's `dispatcher.list` with its destinations replaced, in
/// order, by `lines`; comments and each entry's flags and attributes kept.
pub fn list_for(lines: &[SocketAddr]) -> String {
    let template = std::fs::read_to_string(list_template()).expect("read dispatcher.list");
    let mut lines = lines.iter();
    let mut out = String::new();
    for entry in template.lines() {
        let fields: Vec<&str> = entry.split_whitespace().collect();
        if entry.trim_start().starts_with('#') || fields.len() < 2 {
            out.push_str(entry);
        } else {
            let line = lines
                .next()
                .expect("the test starts as many lines as dispatcher.list has");
            let mut fields = fields;
            let destination = format!("sip:{line}");
            fields[1] = &destination;
            out.push_str(&fields.join(" "));
        }
        out.push('\n');
    }
    assert!(
        lines.next().is_none(),
        "more lines than dispatcher.list has destinations"
    );
    out
}

/// `kamailio -c` on the repository's config and list: the output, and
/// whether it passed.
pub fn check_config() -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("dispatcher.list");
    std::fs::copy(list_template(), &list).expect("copy dispatcher.list");
    let output = Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(config())
        .arg("-A")
        .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
        .arg("-A")
        .arg(format!(
            "CTL_SOCKET=\"unix:{}\"",
            dir.path().join("ctl.sock").display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("run kamailio -c");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

pub struct Dispatcher {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Dispatcher {
    /// Starts kamailio in front of `lines`, probing each every
    /// `ping_interval` seconds.
    pub fn start(lines: &[SocketAddr], ping_interval: u32) -> Dispatcher {
        let dir = tempfile::tempdir().expect("temp dir for kamailio");
        let list = dir.path().join("dispatcher.list");
        std::fs::write(&list, list_for(lines)).expect("write dispatcher.list");
        let port = free_udp_tcp_port();
        let ctl = dir.path().join("ctl.sock");
        let mut command = Command::new("kamailio");
        command
            .arg("-f")
            .arg(config())
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-w")
            .arg(dir.path())
            .arg("-Y")
            .arg(dir.path())
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
            .arg("-A")
            .arg(format!("CTL_SOCKET=\"unix:{}\"", ctl.display()))
            .arg("-A")
            .arg(format!("PING_INTERVAL={ping_interval}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().expect("start kamailio");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        let mut dispatcher = Dispatcher {
            child: Some(child),
            port,
            dir,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !dispatcher.is_running() {
                panic!("kamailio exited at start:\n{}", dispatcher.log_text());
            }
            if ctl.exists() && dispatcher.rpc(&["core.version"]).contains("kamailio") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not start:\n{}",
                dispatcher.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dispatcher
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where callers dial.
    pub fn uri(&self) -> String {
        format!("sip:service@{}", self.addr())
    }

    pub fn rpc(&self, args: &[&str]) -> String {
        let output = Command::new("kamcmd")
            .arg("-s")
            .arg(format!(
                "unix:{}",
                self.dir.path().join("ctl.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kamcmd");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    }

    /// Each destination's URI and dispatcher flags (`AP`: active and
    /// probing, `IP`: inactive), from `dispatcher.list`.
    pub fn destinations(&self) -> Vec<(String, String)> {
        let text = self.rpc(&["dispatcher.list"]);
        let mut found = Vec::new();
        let mut uri = None;
        for line in text.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("URI: ") {
                uri = Some(value.to_owned());
            } else if let Some(flags) = line.strip_prefix("FLAGS: ")
                && let Some(uri) = uri.take()
            {
                found.push((uri, flags.to_owned()));
            }
        }
        found
    }

    /// Waits until `done` holds for the destinations; false on timeout.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[(String, String)]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.destinations()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(2);
            while is_listening(self.port) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
