//! The `[trunk]` section: the SIP trunk the line registers with, and which sources may
//! call it. Kept apart from `config.rs` for size; it uses the same per-key parsers.
//!
//! The section is optional: with no `[trunk]` and no `DAS_TRUNK_*` variable the line only
//! listens, as before. Once any trunk key is given, `registrar`, `username` and exactly one
//! of `password` / `password_file` are required: a half-configured trunk that silently
//! does not register would leave the parish wondering why nobody can call. The password
//! is never required in the file itself (`DAS_TRUNK_PASSWORD` or a file kept elsewhere).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, describe, deserialize_duration, parsed, text};
use crate::sip::Transport;
use crate::sip::message::{header_param, uri_host_port};

pub(super) const KEYS: &[&str] = &[
    "registrar",
    "username",
    "auth_username",
    "password",
    "password_file",
    "outbound_proxy",
    "expires",
    "transport",
    "keepalive",
    "external_address",
    "trust",
    "untrusted",
    "accept_direct",
    "backoff_max",
];

pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(300);
/// Below this a registrar would be refreshed every few seconds; RFC 3261 §10.2.1.1 lets the
/// server raise it anyway (423), but a config asking for it is a mistake.
pub const MIN_EXPIRES: Duration = Duration::from_secs(10);
/// Under the 30 s that many NAT routers keep an idle UDP mapping.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(25);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The trunk the line registers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// The Request-URI of REGISTER; its host is the AoR's domain.
    pub registrar: SipUri,
    /// The user part of the address of record (`sip:username@registrar-host`).
    pub username: String,
    /// The digest username; `username` unless the trunk gives a separate one.
    pub auth_username: String,
    pub password: Password,
    /// Where requests go instead of the registrar (RFC 3261 §8.1.2), with a Route.
    pub outbound_proxy: Option<SipUri>,
    /// What we ask for; the registrar may grant less (or demand more with 423).
    pub expires: Duration,
    pub transport: Transport,
    /// CRLF keep-alive interval while registered; zero disables.
    pub keepalive: Duration,
    /// A fixed public IP for Contact, Via and SDP; disables learning it from `received`.
    pub external_address: Option<IpAddr>,
    /// Sources allowed to start calls; `None` lets anyone call.
    pub trust: Option<Vec<IpNet>>,
    pub untrusted: Untrusted,
    /// Without `trust`, whether calls may come from anywhere (`true`) or
    /// only from the trunk's own addresses (`false`, the default).
    pub accept_direct: bool,
    /// The longest wait between failed registration attempts.
    pub backoff_max: Duration,
}

impl TrunkConfig {
    /// Where REGISTERs are sent: the outbound proxy if set, else the registrar.
    pub fn next_hop(&self) -> &SipUri {
        self.outbound_proxy.as_ref().unwrap_or(&self.registrar)
    }

    /// Whether `source` may start a call (always, without a trust list).
    pub fn is_trusted(&self, source: IpAddr) -> bool {
        self.trust
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|net| net.contains(source)))
    }
}

/// A `sip:` URI reduced to what the line needs: the text as configured (normalised to
/// carry its scheme) and the host and port to resolve. The driver resolves the host with
/// A/AAAA lookups; DNS SRV (RFC 3263) is not done, so a trunk on another port needs it
/// written in the URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub uri: String,
    /// An IPv6 literal comes without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// The URI's `transport` parameter, if any.
    pub transport: Option<Transport>,
}

impl SipUri {
    const EXPECTED: &'static str =
        "expected a SIP URI like \"sip:sip.example.com\" or \"sip:192.0.2.1:5080\"";

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(5060)
    }

    /// `host:port` for `tokio::net::lookup_host`, an IPv6 literal in brackets.
    pub fn lookup_target(&self) -> String {
        format!("{}:{}", self.host_for_uri(), self.port_or_default())
    }

    /// The host as written in a URI: an IPv6 literal in brackets.
    pub fn host_for_uri(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl std::str::FromStr for SipUri {
    type Err = String;

    /// Accepts `sip:host[:port][;params]`, or the same without the scheme.
    fn from_str(text: &str) -> Result<SipUri, String> {
        let text = text.trim();
        let uri = match text.split_once(':') {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("sips") => {
                return Err(format!(
                    "{}, found {text:?}: sips (TLS) is not supported",
                    SipUri::EXPECTED
                ));
            }
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("sip") => text.to_owned(),
            _ => format!("sip:{text}"),
        };
        let bad = || format!("{}, found {text:?}", SipUri::EXPECTED);
        let (host, port) = uri_host_port(&uri).ok_or_else(bad)?;
        if port == Some(0) || uri.contains(char::is_whitespace) {
            return Err(bad());
        }
        let transport = match header_param(&format!("<x>{}", uri_params(&uri)), "transport") {
            None => None,
            Some(Some(t)) if t.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
            Some(Some(t)) if t.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
            Some(other) => {
                return Err(format!(
                    "{}: transport={} is not supported (udp or tcp)",
                    bad(),
                    other.unwrap_or_default()
                ));
            }
        };
        Ok(SipUri {
            uri,
            host,
            port,
            transport,
        })
    }
}

/// The `;params` of a URI, after the host (a user part may hold `;` of its own).
fn uri_params(uri: &str) -> &str {
    let host_part = uri.rsplit_once('@').map_or(uri, |(_, host)| host);
    host_part.find(';').map_or("", |i| &host_part[i..])
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// A secret that `Debug` does not print, so a logged config never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// What happens to a call from a source outside `trust`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Untrusted {
    /// 403 Forbidden: honest, and a scanner learns nothing it did not know.
    #[default]
    Reject,
    /// No answer at all, so scanners cannot tell a SIP service is here.
    Ignore,
}

impl Untrusted {
    /// As written in the config file.
    pub fn config_name(self) -> &'static str {
        match self {
            Untrusted::Reject => "reject",
            Untrusted::Ignore => "ignore",
        }
    }
}

/// An IP network in CIDR form (`203.0.113.0/24`, `2001:db8::/32`), or one address.
/// Hand-written rather than the `ipnet` crate: parsing and `contains` are all we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    const EXPECTED: &'static str =
        "expected an IP address or network like \"203.0.113.0/24\" or \"2001:db8::/32\"";

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
    /// dual-stack socket reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the top `prefix` of `bits` bits agree.
fn mask(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    let host_bits = u32::from(bits - prefix);
    net.checked_shr(host_bits).unwrap_or(0) == ip.checked_shr(host_bits).unwrap_or(0)
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        let bad = || format!("{}, found {text:?}", IpNet::EXPECTED);
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(bad)?,
        };
        let net = IpNet { addr, prefix };
        // `203.0.113.5/24` is ambiguous (a /24 or a typo for /32): in a list that decides
        // who may call, ask rather than widen.
        let network = network_of(net);
        if network != addr {
            return Err(format!(
                "{text:?} has host bits set: write {network}/{prefix} for the network, \
                 or {addr} for the one address"
            ));
        }
        Ok(net)
    }
}

/// The network address: `addr` with its host bits cleared.
fn network_of(net: IpNet) -> IpAddr {
    match net.addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & keep).into())
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What the file and environment said about the trunk, before checks and defaults.
#[derive(Default)]
pub(super) struct TrunkSettings {
    /// A `[trunk]` section or a `DAS_TRUNK_*` variable was seen.
    pub(super) present: bool,
    registrar: Option<SipUri>,
    username: Option<String>,
    auth_username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    outbound_proxy: Option<SipUri>,
    expires: Option<Duration>,
    transport: Option<Transport>,
    keepalive: Option<Duration>,
    external_address: Option<IpAddr>,
    trust: Option<Vec<IpNet>>,
    untrusted: Option<Untrusted>,
    accept_direct: Option<bool>,
    backoff_max: Option<Duration>,
}

impl TrunkSettings {
    /// Reads one `[trunk]` value; `base` resolves a relative `password_file`.
    pub(super) fn set(
        &mut self,
        key: &str,
        value: toml::Value,
        base: Option<&Path>,
    ) -> Result<(), String> {
        self.present = true;
        let duration = |value: toml::Value| {
            deserialize_duration(value).map_err(|e: toml::de::Error| e.message().to_owned())
        };
        match key {
            "registrar" => self.registrar = Some(sip_uri(value)?),
            "outbound_proxy" => self.outbound_proxy = Some(sip_uri(value)?),
            "username" => self.username = Some(user(value)?),
            "auth_username" => self.auth_username = Some(user(value)?),
            "password" => {
                // Not `text`: a password of spaces is odd but not ours to judge.
                match value {
                    toml::Value::String(secret) if !secret.is_empty() => {
                        self.password = Some(secret);
                    }
                    other => return Err(format!("expected a password, found {}", kind(&other))),
                }
            }
            "password_file" => {
                let path = PathBuf::from(text(value, "expected a path")?);
                self.password_file = Some(match base {
                    Some(dir) if path.is_relative() => dir.join(path),
                    _ => path,
                });
            }
            "expires" => {
                let expires = duration(value)?;
                if expires < MIN_EXPIRES || expires.as_secs() > u64::from(u32::MAX) {
                    return Err("expected a duration of at least 10 seconds, like \"5m\"".into());
                }
                self.expires = Some(expires);
            }
            "transport" => {
                let name = text(value, "expected \"udp\" or \"tcp\"")?;
                self.transport = Some(match name.trim().to_ascii_lowercase().as_str() {
                    "udp" => Transport::Udp,
                    "tcp" => Transport::Tcp,
                    _ => return Err(format!("expected \"udp\" or \"tcp\", found {name:?}")),
                });
            }
            "keepalive" => {
                let keepalive = duration(value)?;
                if !keepalive.is_zero() && keepalive < Duration::from_secs(1) {
                    // A keep-alive many times a second would be a flood, not a keep-alive.
                    return Err(
                        "expected 0 (off) or a duration of at least 1s, like \"25s\"".into(),
                    );
                }
                self.keepalive = Some(keepalive);
            }
            "external_address" => {
                self.external_address = Some(parsed(
                    value,
                    "expected an IP address like \"203.0.113.7\"",
                )?);
            }
            "trust" => self.trust = Some(networks(value)?),
            "untrusted" => {
                let name = text(value, "expected \"reject\" or \"ignore\"")?;
                self.untrusted = Some(match name.trim().to_ascii_lowercase().as_str() {
                    "reject" => Untrusted::Reject,
                    "ignore" => Untrusted::Ignore,
                    _ => return Err(format!("expected \"reject\" or \"ignore\", found {name:?}")),
                });
            }
            "accept_direct" => self.accept_direct = Some(super::call::boolean(value)?),
            "backoff_max" => {
                let max = duration(value)?;
                if max < Duration::from_secs(1) {
                    return Err("expected a duration of at least 1s, like \"5m\"".into());
                }
                self.backoff_max = Some(max);
            }
            _ => unreachable!("trunk::KEYS lists only keys that TrunkSettings::set handles"),
        }
        Ok(())
    }

    /// Checks the keys that depend on each other and reads the password file. `file` is
    /// the config file, named in errors about missing keys.
    pub(super) fn finish(self, file: &Path) -> Result<Option<TrunkConfig>, ConfigError> {
        if !self.present {
            return Ok(None);
        }
        let missing = |key: &str, how: &str| ConfigError::BadValue {
            file: file.to_owned(),
            key: format!("[trunk] {key}"),
            message: format!("required when the line registers with a trunk ({how})"),
        };
        let registrar = self.registrar.ok_or_else(|| {
            missing(
                "registrar",
                "a SIP URI like \"sip:sip.example.com\", or DAS_TRUNK_REGISTRAR",
            )
        })?;
        let username = self
            .username
            .ok_or_else(|| missing("username", "or DAS_TRUNK_USERNAME"))?;
        let password = match (self.password, self.password_file) {
            (Some(secret), None) => secret,
            (None, Some(path)) => read_password(&path)?,
            (None, None) => {
                return Err(missing(
                    "password",
                    "DAS_TRUNK_PASSWORD, password, or password_file naming a file that holds it",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::BadValue {
                    file: file.to_owned(),
                    key: "[trunk] password".to_owned(),
                    message: "give either password or password_file, not both".to_owned(),
                });
            }
        };
        let transport = match (self.transport, registrar.transport) {
            (Some(key), Some(uri)) if key != uri => {
                return Err(ConfigError::BadValue {
                    file: file.to_owned(),
                    key: "[trunk] transport".to_owned(),
                    message: format!(
                        "{} disagrees with the registrar's transport parameter ({})",
                        key.via_token().to_ascii_lowercase(),
                        registrar.uri
                    ),
                });
            }
            (key, uri) => key.or(uri).unwrap_or_default(),
        };
        Ok(Some(TrunkConfig {
            auth_username: self.auth_username.unwrap_or_else(|| username.clone()),
            registrar,
            username,
            password: Password(password),
            outbound_proxy: self.outbound_proxy,
            expires: self.expires.unwrap_or(DEFAULT_EXPIRES),
            transport,
            keepalive: self.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
            external_address: self.external_address,
            trust: self.trust,
            untrusted: self.untrusted.unwrap_or_default(),
            accept_direct: self.accept_direct.unwrap_or(false),
            backoff_max: self.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX),
        }))
    }
}

fn read_password(path: &Path) -> Result<String, ConfigError> {
    // A password is short; reading at most this much means a mistaken
    // `/dev/zero` or log file cannot hang or swell the start.
    const MAX_PASSWORD_FILE: u64 = 4096;
    let error = |source| ConfigError::PasswordFile {
        path: path.to_owned(),
        source,
    };
    let mut contents = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(error)?,
            MAX_PASSWORD_FILE + 1,
        ),
        &mut contents,
    )
    .map_err(error)?;
    if contents.len() as u64 > MAX_PASSWORD_FILE {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {MAX_PASSWORD_FILE} bytes: not a password file"),
        )));
    }
    // Editors and `echo` add a final newline that is not part of the secret.
    let secret = contents.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(ConfigError::EmptyPasswordFile {
            path: path.to_owned(),
        });
    }
    Ok(secret.to_owned())
}

/// A server's URI: REGISTER's Request-URI names the domain, never a user (§10.2).
fn sip_uri(value: toml::Value) -> Result<SipUri, String> {
    let uri: SipUri = text(value, SipUri::EXPECTED)?.parse()?;
    if uri.uri.contains('@') {
        // Not quoted: a user part may carry a password (`sip:u:secret@host`).
        return Err(
            "expected the server's URI without a user, like \"sip:sip.example.com\" \
             (the account goes in username), found one with a user part"
                .to_owned(),
        );
    }
    Ok(uri)
}

/// A SIP user part: no spaces or characters that would break the URI we build.
fn user(value: toml::Value) -> Result<String, String> {
    let user = text(value, "expected a user name")?;
    let user = user.trim();
    if user.contains(|c: char| c.is_whitespace() || "@:;<>\"".contains(c)) {
        return Err(format!(
            "expected a user name without spaces or any of @ : ; < > \", found {user:?}"
        ));
    }
    Ok(user.to_owned())
}

/// An array of networks, or one comma-separated string (the form an env variable takes).
pub(super) fn networks(value: toml::Value) -> Result<Vec<IpNet>, String> {
    let items: Vec<String> = match value {
        toml::Value::String(text) => text.split(',').map(str::to_owned).collect(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(net) => Ok(net),
                other => Err(format!("{}, found {}", IpNet::EXPECTED, describe(&other))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected a list of networks like [\"203.0.113.0/24\"], found {}",
                describe(&other)
            ));
        }
    };
    let nets = items
        .iter()
        .filter(|item| !item.trim().is_empty())
        .map(|item| item.parse())
        .collect::<Result<Vec<IpNet>, String>>()?;
    if nets.is_empty() {
        // An empty list would refuse every call: surely not what was meant.
        return Err(
            "expected at least one network; leave trust out to take calls from anywhere".into(),
        );
    }
    Ok(nets)
}

/// Like `describe`, without echoing a secret.
fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "an empty string",
        toml::Value::Integer(_) | toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}
