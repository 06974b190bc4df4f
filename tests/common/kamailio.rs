//! Kamailio playing the SIP trunk the line registers with: a registrar that
//! demands digest authentication and a proxy that routes
//! `INVITE sip:<user>@<kamailio>` to the registered contact
//! (`tests/kamailio/trunk.cfg`). No database: contacts live in memory, so a
//! restart forgets them, as a trunk that lost its state would.
//!
//! Each instance gets its own port (free for both UDP and TCP, checked with
//! `ss` because a UDP port can be silently shared), its own temp dir and its
//! own `ctl` socket, so `kamcmd` reaches this instance and no other. Kamailio
//! forks workers; it runs in a process group of its own so that [`Drop`] can
//! end the whole group by its id.
//!
//! Quirks this works around:
//! - `kamcmd` exits 0 even when the RPC fails (`error: 500 - AOR not found
//!   in location table`): the output is checked instead.
//! - `--modparam=ctl:...` on the command line fails (it is applied before
//!   the cfg loads the module), so the ctl socket is a `-A` define.
//! - `-A` string defines must carry their own double quotes
//!   (`-A 'NAME="value"'`); a value with `"` or `\` would break the cfg, so
//!   such passwords are refused here.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::repo;

/// How long kamailio may take to start answering its ctl socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One running trunk.
pub struct Kamailio {
    child: Option<Child>,
    port: u16,
    user: String,
    password: String,
    defines: Vec<String>,
    dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

/// One registered contact, as `ul.lookup` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The Contact URI as the UA sent it, e.g. `sip:line@127.0.0.1:5062`.
    pub uri: String,
    /// Time left before it expires; `None` for a permanent contact.
    pub expires: Option<Duration>,
    /// The source the REGISTER came from, set by the trunk for TCP
    /// (`sip:127.0.0.1:41234;transport=tcp`): requests go there, over the
    /// connection the REGISTER used.
    pub received: Option<String>,
    /// The trunk's socket it arrived on, e.g. `udp:127.0.0.1:5060`.
    pub socket: String,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: String,
    /// Unix time of the last REGISTER that refreshed it.
    pub last_modified: u64,
}

impl Contact {
    /// `udp` or `tcp`: the transport the contact registered over.
    pub fn transport(&self) -> &str {
        self.socket.split(':').next().unwrap_or("")
    }
}

impl Kamailio {
    /// Starts a trunk that accepts REGISTER for `user` with `password`.
    pub fn start(user: &str, password: &str) -> Kamailio {
        Kamailio::start_with(user, password, &[])
    }

    /// Like [`Kamailio::start`], with extra `-A` defines of the cfg
    /// (e.g. `WITH_SHA256` for `algorithm=SHA-256` challenges).
    pub fn start_with(user: &str, password: &str, defines: &[&str]) -> Kamailio {
        for value in [user, password] {
            assert!(
                !value.contains(['"', '\\']),
                "a kamailio -A string define cannot hold quotes or backslashes: {value:?}"
            );
        }
        let mut kamailio = Kamailio {
            child: None,
            port: free_udp_tcp_port(),
            user: user.to_owned(),
            password: password.to_owned(),
            defines: defines.iter().map(|d| d.to_string()).collect(),
            dir: tempfile::tempdir().expect("temp dir for kamailio"),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        kamailio.spawn();
        kamailio
    }

    /// The trunk's SIP address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Request-URI of a REGISTER: `sip:127.0.0.1:PORT`.
    pub fn registrar_uri(&self) -> String {
        format!("sip:{}", self.addr())
    }

    /// Where callers dial `user`: `sip:user@127.0.0.1:PORT`.
    pub fn user_uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr())
    }

    /// The account the trunk accepts.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The digest realm of the challenges: the To domain of the REGISTER,
    /// which is the registrar's address.
    pub fn realm(&self) -> String {
        "127.0.0.1".to_owned()
    }

    pub fn ctl_socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    /// The temp dir this instance works in (sipp traces can go there too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one RPC through `kamcmd` and returns its output. Kamcmd exits 0
    /// even when the RPC fails; failures start with `error:`.
    pub fn rpc(&self, args: &[&str]) -> String {
        let output = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl_socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kamcmd");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    }

    /// One counter of `kamcmd stats.get_statistics`, e.g.
    /// `tcp:connect_success` (connections kamailio opened itself) or
    /// `tcp:passive_open` (connections it accepted).
    pub fn statistic(&self, name: &str) -> Option<u64> {
        // The RPC takes a group (`tcp:`) or a bare name, not `group:name`.
        let group = format!("{}:", name.split(':').next().unwrap_or(name));
        let text = self.rpc(&["stats.get_statistics", &group]);
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(" = ")?;
            (key.trim() == name).then(|| value.trim().parse().ok())?
        })
    }

    /// The live contacts of `user` (none when the AoR is unknown).
    pub fn contacts(&self, user: &str) -> Vec<Contact> {
        let text = self.rpc(&["ul.lookup", "location", user]);
        if text.contains("AOR not found") {
            return Vec::new();
        }
        assert!(
            !text.trim_start().starts_with("error"),
            "kamcmd ul.lookup failed: {text}"
        );
        parse_contacts(&text)
    }

    /// Waits until `user` has a contact and returns the first.
    pub fn wait_for_contact(&self, user: &str, timeout: Duration) -> Option<Contact> {
        self.wait_for_contacts(user, timeout, |c| !c.is_empty())
            .and_then(|c| c.into_iter().next())
    }

    /// Waits until the contacts of `user` satisfy `done`; returns them, or
    /// `None` on timeout.
    pub fn wait_for_contacts(
        &self,
        user: &str,
        timeout: Duration,
        done: impl Fn(&[Contact]) -> bool,
    ) -> Option<Vec<Contact>> {
        let deadline = Instant::now() + timeout;
        loop {
            let contacts = self.contacts(user);
            if done(&contacts) {
                return Some(contacts);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the trunk and starts it again on the same port. Every contact
    /// is forgotten (no database); nonces stay valid-looking but stale.
    pub fn restart(&mut self) {
        self.stop();
        self.log_line("--- restart ---");
        self.spawn();
    }

    /// Starts a stopped trunk again on the same port (after [`Kamailio::stop`],
    /// e.g. to keep it down while the line backs off).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "kamailio is still running");
        self.log_line("--- start again ---");
        self.spawn();
    }

    /// Stops the trunk (SIGTERM to kamailio, which ends its workers; SIGKILL
    /// to the group if it lingers) and waits until the port is free.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The workers are in kamailio's process group (its pid).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_listening(self.port) {
            assert!(
                Instant::now() < deadline,
                "port {} still taken after kamailio stopped",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything kamailio logged (all starts), one line per entry.
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Lines of the log containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn log_line(&self, line: &str) {
        self.log.lock().expect("log lock").push(line.to_owned());
    }

    fn spawn(&mut self) {
        assert!(
            !is_listening(self.port),
            "port {} is already taken: kamailio would share it and steal traffic",
            self.port
        );
        let dir = self.dir.path();
        let ctl = self.ctl_socket();
        let _ = std::fs::remove_file(&ctl);
        let mut command = Command::new("kamailio");
        command
            .arg("-f")
            .arg(repo().join("tests/kamailio/trunk.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-w")
            .arg(dir)
            .arg("-Y")
            .arg(dir)
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{}", self.port))
            .arg("-l")
            .arg(format!("tcp:127.0.0.1:{}", self.port))
            .arg("-A")
            .arg(format!("TRUNK_USER=\"{}\"", self.user))
            .arg("-A")
            .arg(format!("TRUNK_PASSWORD=\"{}\"", self.password))
            .arg("-A")
            .arg(format!("CTL_SOCKET=\"unix:{}\"", ctl.display()));
        for define in &self.defines {
            command.arg("-A").arg(define);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own group: stop() and Drop end the workers by this id.
            .process_group(0);
        let mut child = command.spawn().expect("start kamailio");
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        self.child = Some(child);

        // Ready when the ctl process answers: the SIP sockets are bound
        // before kamailio forks its workers, so they are open by then.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                panic!("kamailio exited at start:\n{}", self.log_text());
            }
            if ctl.exists() && self.rpc(&["core.version"]).contains("kamailio") {
                break;
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!("kamailio did not start:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM first: kamailio's main process ends and reaps its
        // workers; a SIGKILL alone would leave them to whoever adopts them.
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
        }
    }
}

/// A loopback port free for both UDP and TCP, with nothing listening on it
/// according to `ss` (which also sees sockets of other users).
pub fn free_udp_tcp_port() -> u16 {
    super::chosen_port(|port| {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && !is_listening(port)
    })
}

/// Whether anything listens on `port` over UDP or TCP (any address).
pub fn is_listening(port: u16) -> bool {
    is_listening_udp(port) || is_listening_tcp(port)
}

pub fn is_listening_udp(port: u16) -> bool {
    ss_lists("-Hlnu", port)
}

pub fn is_listening_tcp(port: u16) -> bool {
    ss_lists("-Hlnt", port)
}

fn ss_lists(flags: &str, port: u16) -> bool {
    let output = Command::new("ss")
        .args([flags, &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    !String::from_utf8_lossy(&output.stdout).trim().is_empty()
}

/// Parses `kamcmd ul.lookup` output: one `Contact: { … }` block per
/// contact, `Key: value` lines inside. Expired and deleted contacts
/// (awaiting the usrloc timer) are left out.
pub fn parse_contacts(text: &str) -> Vec<Contact> {
    let mut contacts = Vec::new();
    let mut current: Option<Contact> = None;
    let mut live = true;
    for line in text.lines().map(str::trim) {
        if line == "Contact: {" {
            if let Some(done) = current.take().filter(|_| live) {
                contacts.push(done);
            }
            current = Some(Contact {
                uri: String::new(),
                expires: None,
                received: None,
                socket: String::new(),
                call_id: String::new(),
                cseq: 0,
                user_agent: String::new(),
                last_modified: 0,
            });
            live = true;
            continue;
        }
        let Some(contact) = current.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key {
            "Address" => contact.uri = value.to_owned(),
            "Expires" => match value.parse::<u64>() {
                Ok(secs) => contact.expires = Some(Duration::from_secs(secs)),
                Err(_) => live = value == "permanent",
            },
            "Received" if value != "[not set]" => contact.received = Some(value.to_owned()),
            "Socket" => contact.socket = value.to_owned(),
            "Call-ID" => contact.call_id = value.to_owned(),
            "CSeq" => contact.cseq = value.parse().unwrap_or(0),
            "User-Agent" => contact.user_agent = value.to_owned(),
            "Last-Modified" => contact.last_modified = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    if let Some(done) = current.filter(|_| live) {
        contacts.push(done);
    }
    contacts
}

/// How a sipp run against the trunk went.
pub struct SippRun {
    pub output: Output,
    /// sipp's `-error_file`: unexpected messages and why the call failed.
    pub errors: String,
    /// sipp's `-message_file`: every message sent and received.
    pub messages: String,
}

impl SippRun {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Everything useful for an assertion message.
    pub fn report(&self) -> String {
        format!(
            "sipp {:?}\n--- errors ---\n{}\n--- stdout ---\n{}\n--- messages ---\n{}",
            self.output.status,
            self.errors,
            String::from_utf8_lossy(&self.output.stdout),
            self.messages
        )
    }
}

/// A sipp command for one call of `scenario` (a file in `tests/sipp/`)
/// against `target`, bound to `127.0.0.1:local_port`, tracing into `dir`
/// under `name`. Add scenario options (`-s`, `-au`, `-set`, `-t t1`, …) and
/// hand it to [`run_sipp`] or spawn it.
pub fn sipp_command(
    dir: &Path,
    name: &str,
    scenario: &str,
    target: SocketAddr,
    local_port: u16,
) -> Command {
    let mut command = Command::new("sipp");
    command
        .current_dir(dir)
        .arg("-sf")
        .arg(repo().join("tests/sipp").join(scenario))
        .args(["-m", "1", "-i", "127.0.0.1", "-p", &local_port.to_string()])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{name}-errors.log")))
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join(format!("{name}-messages.log")))
        .arg(target.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for a sipp started from [`sipp_command`] and collects its traces.
pub fn finish_sipp(child: Child, dir: &Path, name: &str) -> SippRun {
    let output = child.wait_with_output().expect("wait for sipp");
    SippRun {
        output,
        errors: std::fs::read_to_string(dir.join(format!("{name}-errors.log"))).unwrap_or_default(),
        messages: std::fs::read_to_string(dir.join(format!("{name}-messages.log")))
            .unwrap_or_default(),
    }
}

/// Runs a sipp command to the end.
pub fn run_sipp(mut command: Command, dir: &Path, name: &str) -> SippRun {
    let child = command.spawn().expect("run sipp");
    finish_sipp(child, dir, name)
}
