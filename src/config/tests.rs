//! Defaults, overrides and the messages a mistyped config gets.

use std::collections::HashMap;

use super::*;
use crate::sip::Transport;

fn no_env(_: &str) -> Option<String> {
    None
}

fn from(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("/etc/das/das.toml"), no_env)
}

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml_str(text, Path::new("/etc/das/das.toml"), |name| {
        vars.get(name).cloned()
    })
}

fn error(text: &str) -> String {
    from(text).unwrap_err().to_string()
}

#[test]
fn empty_file_gives_every_default() {
    let c = from("").unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
    assert_eq!(c.sip.public_address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.sip.t1, Duration::from_millis(500));
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            first: 16384,
            last: 32767
        }
    );
    assert_eq!(c.media.codecs, [Codec::Pcmu, Codec::Pcma, Codec::Opus]);
    assert_eq!(c.media.max_cached_tracks, 16);
    assert_eq!(
        c.source.schedule.as_path(),
        Some(Path::new("/etc/das/data.json"))
    );
    assert_eq!(c.source.audio.as_path(), Some(Path::new("/etc/das/audio")));
    assert_eq!(c.audio.apology, Path::new("/etc/das/../audio/apology.wav"));
    assert_eq!(c.log.level, "info");
}

#[test]
fn file_values_are_read() {
    let c = from(
        r#"
[sip]
listen = "0.0.0.0:5080"
public_address = "203.0.113.7"
t1 = "250ms"
[media]
rtp_ports = "20000-20099"
codecs = ["opus", "PCMA"]
max_cached_tracks = 4
[source]
schedule = "/srv/parish/data.json"
[audio]
apology = "sorry.wav"
[log]
level = "debug,dial_a_service::sip=trace"
"#,
    )
    .unwrap();
    assert_eq!(c.sip.listen, "0.0.0.0:5080".parse().unwrap());
    assert_eq!(
        c.sip.public_address,
        "203.0.113.7".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.sip.t1, Duration::from_millis(250));
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            first: 20000,
            last: 20099
        }
    );
    assert_eq!(c.media.codecs, [Codec::Opus, Codec::Pcma]);
    assert_eq!(c.media.max_cached_tracks, 4);
    // Absolute paths stay; the audio folder follows the schedule.
    assert_eq!(
        c.source.schedule.as_path(),
        Some(Path::new("/srv/parish/data.json"))
    );
    assert_eq!(
        c.source.audio.as_path(),
        Some(Path::new("/srv/parish/audio"))
    );
    assert_eq!(c.audio.apology, Path::new("/etc/das/sorry.wav"));
    assert_eq!(c.log.level, "debug,dial_a_service::sip=trace");
}

#[test]
fn public_address_defaults_to_loopback_for_wildcard_listen() {
    let c = from("[sip]\nlisten = \"0.0.0.0:5060\"").unwrap();
    assert_eq!(c.sip.public_address, "127.0.0.1".parse::<IpAddr>().unwrap());
    let c = from("[sip]\nlisten = \"[::]:5060\"").unwrap();
    assert_eq!(c.sip.public_address, "::1".parse::<IpAddr>().unwrap());
    let c = from("[sip]\nlisten = \"192.0.2.5:5060\"").unwrap();
    assert_eq!(c.sip.public_address, "192.0.2.5".parse::<IpAddr>().unwrap());
}

#[test]
fn every_key_has_an_env_override() {
    let file = "[sip]\nlisten = \"127.0.0.1:5070\"\n[media]\ncodecs = \"pcmu\"\n";
    let c = with_env(
        file,
        &[
            ("DAS_SIP_LISTEN", "0.0.0.0:5090"),
            ("DAS_SIP_PUBLIC_ADDRESS", "2001:db8::7"),
            ("DAS_SIP_T1", "1.5"),
            ("DAS_SIP_ANSWER_DELAY", "2s"),
            ("DAS_MEDIA_RTP_PORTS", "30000-30001"),
            ("DAS_MEDIA_CODECS", "pcma, opus"),
            ("DAS_MEDIA_MAX_CACHED_TRACKS", "3"),
            ("DAS_SOURCE_SCHEDULE", "parish/data.json"),
            ("DAS_SOURCE_AUDIO", "/var/audio"),
            ("DAS_AUDIO_APOLOGY", "sorry.wav"),
            ("DAS_LOG_LEVEL", "warn"),
            ("DAS_LINE_TIMEZONE", "Europe/Dublin"),
        ],
    )
    .unwrap();
    assert_eq!(c.sip.listen, "0.0.0.0:5090".parse().unwrap());
    assert_eq!(
        c.sip.public_address,
        "2001:db8::7".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.sip.t1, Duration::from_millis(1500));
    assert_eq!(c.sip.answer_delay, Duration::from_secs(2));
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            first: 30000,
            last: 30001
        }
    );
    assert_eq!(c.media.codecs, [Codec::Pcma, Codec::Opus]);
    assert_eq!(c.media.max_cached_tracks, 3);
    // Relative env paths stay relative: the working directory resolves them.
    assert_eq!(
        c.source.schedule.as_path(),
        Some(Path::new("parish/data.json"))
    );
    assert_eq!(c.source.audio.as_path(), Some(Path::new("/var/audio")));
    assert_eq!(c.audio.apology, Path::new("sorry.wav"));
    assert_eq!(c.log.level, "warn");
    assert_eq!(c.line.timezone, chrono_tz::Europe::Dublin);

    // An empty variable is treated as unset.
    let c = with_env(file, &[("DAS_SIP_LISTEN", "")]).unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070".parse().unwrap());
    // The audio default follows an env-given schedule.
    let c = with_env("", &[("DAS_SOURCE_SCHEDULE", "/srv/p/data.json")]).unwrap();
    assert_eq!(c.source.audio.as_path(), Some(Path::new("/srv/p/audio")));
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = with_env("", &[("DAS_MEDIA_RTP_PORTS", "5000")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable DAS_MEDIA_RTP_PORTS (for [media] rtp_ports): expected a port \
         range like \"16384-32767\" (ports 1024 to 65535, first no greater than last), found \"5000\""
    );
    let err = with_env("", &[("DAS_SIP_T1", "soon")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("environment variable DAS_SIP_T1 "),
        "{err}"
    );
    let err = with_env("", &[("DAS_MEDIA_CODECS", "g729")]).unwrap_err();
    assert!(
        matches!(err, ConfigError::BadEnv { ref variable, .. } if variable == "DAS_MEDIA_CODECS")
    );
}

#[test]
fn unknown_key_names_file_and_key() {
    assert_eq!(
        error("[media]\nrtp_port = \"1-2\"\n"),
        "/etc/das/das.toml: unknown key [media] rtp_port \
         (known keys in [media]: rtp_ports, codecs, max_cached_tracks, hold_timeout)"
    );
    assert_eq!(
        error("[meda]\nrtp_ports = \"20000-20001\"\n"),
        "/etc/das/das.toml: unknown section [meda] (known sections: sip, media, source, audio, log, line, dtmf, speech, cache, trunk, admin, self_test)"
    );
    assert_eq!(
        error("listen = \"127.0.0.1:5060\"\n"),
        "/etc/das/das.toml: `listen` must be inside a section, like [sip]"
    );
}

#[test]
fn bad_port_ranges() {
    for bad in [
        "\"16384\"",
        "\"100-200\"",
        "\"30000-20000\"",
        "\"1024-70000\"",
        "\"a-b\"",
        "16384",
    ] {
        let err = error(&format!("[media]\nrtp_ports = {bad}\n"));
        assert!(
            err.starts_with(
                "/etc/das/das.toml: [media] rtp_ports: expected a port range like \"16384-32767\""
            ),
            "{bad}: {err}"
        );
    }
    let c = from("[media]\nrtp_ports = \"1024-1024\"").unwrap();
    assert_eq!(
        c.media.rtp_ports,
        PortRange {
            first: 1024,
            last: 1024
        }
    );
}

#[test]
fn bad_codecs() {
    assert_eq!(
        error("[media]\ncodecs = [\"pcmu\", \"g729\"]"),
        "/etc/das/das.toml: [media] codecs: unknown codec \"g729\"; valid codecs: pcmu, pcma, opus"
    );
    assert!(
        error("[media]\ncodecs = []").ends_with("expected at least one codec (pcmu, pcma, opus)")
    );
    assert!(
        error("[media]\ncodecs = \" , \"")
            .ends_with("expected at least one codec (pcmu, pcma, opus)")
    );
    assert!(error("[media]\ncodecs = [1]").contains("found the number 1"));
    // Duplicates collapse, order kept.
    let c = from("[media]\ncodecs = \"opus,pcmu,opus\"").unwrap();
    assert_eq!(c.media.codecs, [Codec::Opus, Codec::Pcmu]);
}

#[test]
fn durations_in_every_form() {
    let t1 = |value: &str| from(&format!("[sip]\nt1 = {value}")).map(|c| c.sip.t1);
    assert_eq!(t1("2").unwrap(), Duration::from_secs(2));
    assert_eq!(t1("0.25").unwrap(), Duration::from_millis(250));
    assert_eq!(t1("\"60\"").unwrap(), Duration::from_secs(60));
    assert_eq!(t1("\"0.5\"").unwrap(), Duration::from_millis(500));
    assert_eq!(t1("\"90s\"").unwrap(), Duration::from_secs(90));
    assert_eq!(t1("\"5m\"").unwrap(), Duration::from_secs(300));
    assert_eq!(t1("\"500ms\"").unwrap(), Duration::from_millis(500));
    assert_eq!(t1("\"1m 30s\"").unwrap(), Duration::from_secs(90));
    for bad in ["-1", "\"-1\"", "\"soon\"", "true", "0", "\"0s\"", "nan"] {
        let err = t1(bad).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/das/das.toml: [sip] t1: "),
            "{bad}: {err}"
        );
    }
    assert!(t1("\"soon\"").unwrap_err().to_string().contains("\"90s\""));
}

#[test]
fn duration_deserialiser_works_in_derived_structs() {
    #[derive(serde::Deserialize)]
    struct Timers {
        #[serde(deserialize_with = "deserialize_duration")]
        refresh: Duration,
    }
    let t: Timers = toml::from_str("refresh = \"1h\"").unwrap();
    assert_eq!(t.refresh, Duration::from_secs(3600));
}

#[test]
fn other_bad_values() {
    assert!(error("[sip]\nlisten = \"localhost\"").contains("expected an address and port"));
    assert!(error("[sip]\npublic_address = 7").contains("expected an IP address"));
    assert!(error("[media]\nmax_cached_tracks = 0").contains("at least 1"));
    assert!(error("[media]\nmax_cached_tracks = -3").contains("found the number -3"));
    assert!(error("[source]\nschedule = \"\"").contains("[source] schedule: expected a path"));
    assert!(error("[log]\nlevel = \"loud=!\"").contains("[log] level: expected a log level"));
    let syntax = error("[sip\nlisten = 1");
    assert!(
        syntax.starts_with("/etc/das/das.toml: line 1, column 5: not valid toml: "),
        "{syntax}"
    );
}

#[test]
fn load_reads_the_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("das.toml");
    std::fs::write(
        &path,
        "[source]\nschedule = \"sched/data.json\"\naudio = \"../audio\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(&path, no_env).unwrap();
    assert_eq!(
        c.source.schedule.as_path(),
        Some(dir.path().join("sched/data.json").as_path())
    );
    assert_eq!(
        c.source.audio.as_path(),
        Some(dir.path().join("../audio").as_path())
    );

    let missing = dir.path().join("nope.toml");
    let err = Config::load_with_env(&missing, no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn shipped_example_config_loads_and_points_at_shipped_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = Config::load_with_env(&root.join("config/dial-a-service.toml"), no_env).unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
    let schedule = c.source.schedule.as_path().unwrap();
    assert!(schedule.is_file(), "{}", schedule.display());
    let audio = c.source.audio.as_path().unwrap();
    assert!(audio.join("sample-service.mp3").is_file());
    assert!(c.audio.apology.is_file(), "{}", c.audio.apology.display());
}

#[test]
fn env_names() {
    assert_eq!(env_name("media", "rtp_ports"), "DAS_MEDIA_RTP_PORTS");
}

const TRUNK: &str = r#"
[trunk]
registrar = "sip:sip.example.com"
username = "stmarys"
password = "s3cret"
"#;

#[test]
fn no_trunk_section_means_no_registration() {
    assert!(from("").unwrap().trunk.is_none());
    // Unrelated variables do not conjure one up.
    assert!(
        with_env("", &[("DAS_SIP_T1", "1")])
            .unwrap()
            .trunk
            .is_none()
    );
}

#[test]
fn trunk_defaults() {
    let t = from(TRUNK).unwrap().trunk.unwrap();
    assert_eq!(t.registrar.uri, "sip:sip.example.com");
    assert_eq!(t.registrar.host, "sip.example.com");
    assert_eq!(t.registrar.port, None);
    assert_eq!(t.registrar.lookup_target(), "sip.example.com:5060");
    assert_eq!(t.username, "stmarys");
    assert_eq!(t.auth_username, "stmarys");
    assert_eq!(t.password.expose(), "s3cret");
    assert_eq!(t.outbound_proxy, None);
    assert_eq!(t.next_hop(), &t.registrar);
    assert_eq!(t.expires, Duration::from_secs(300));
    assert_eq!(t.transport, Transport::Udp);
    assert_eq!(t.keepalive, Duration::from_secs(25));
    assert_eq!(t.external_address, None);
    assert_eq!(t.trust, None);
    assert!(t.is_trusted("198.51.100.1".parse().unwrap()));
    assert_eq!(t.untrusted, Untrusted::Reject);
    assert_eq!(t.backoff_max, Duration::from_secs(300));
    // The secret never reaches a log through Debug.
    assert!(!format!("{t:?}").contains("s3cret"));
}

#[test]
fn trunk_file_values_are_read() {
    let t = from(
        r#"
[trunk]
registrar = "sip.example.com:5080"
username = "stmarys"
auth_username = "8832001"
password = "s3cret"
outbound_proxy = "sip:[2001:db8::1]:5070;lr"
expires = "10m"
transport = "TCP"
keepalive = 0
external_address = "203.0.113.7"
trust = ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]
untrusted = "ignore"
backoff_max = "90s"
"#,
    )
    .unwrap()
    .trunk
    .unwrap();
    // A bare host gets its scheme.
    assert_eq!(t.registrar.uri, "sip:sip.example.com:5080");
    assert_eq!(t.registrar.lookup_target(), "sip.example.com:5080");
    assert_eq!(t.auth_username, "8832001");
    let proxy = t.outbound_proxy.as_ref().unwrap();
    assert_eq!(proxy.host, "2001:db8::1");
    assert_eq!(proxy.lookup_target(), "[2001:db8::1]:5070");
    assert_eq!(t.next_hop(), proxy);
    assert_eq!(t.expires, Duration::from_secs(600));
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(t.keepalive, Duration::ZERO);
    assert_eq!(t.external_address, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(t.untrusted, Untrusted::Ignore);
    assert_eq!(t.backoff_max, Duration::from_secs(90));
    let trusted = |ip: &str| t.is_trusted(ip.parse().unwrap());
    assert!(trusted("203.0.113.200"));
    assert!(trusted("198.51.100.7"));
    assert!(!trusted("198.51.100.8"));
    assert!(trusted("2001:db8:ffff::5"));
    assert!(!trusted("2001:db9::5"));
    // A dual-stack socket reports IPv4 callers as mapped IPv6.
    assert!(trusted("::ffff:203.0.113.9"));
    assert!(!trusted("::ffff:192.0.2.1"));
}

#[test]
fn trunk_env_overrides() {
    let t = with_env(
        "",
        &[
            ("DAS_TRUNK_REGISTRAR", "sip:trunk.example.net;transport=tcp"),
            ("DAS_TRUNK_USERNAME", "line1"),
            ("DAS_TRUNK_AUTH_USERNAME", "auth1"),
            ("DAS_TRUNK_PASSWORD", "pw from env"),
            ("DAS_TRUNK_OUTBOUND_PROXY", "proxy.example.net"),
            ("DAS_TRUNK_EXPIRES", "120"),
            ("DAS_TRUNK_KEEPALIVE", "15s"),
            ("DAS_TRUNK_EXTERNAL_ADDRESS", "192.0.2.44"),
            ("DAS_TRUNK_TRUST", "203.0.113.0/24, 10.0.0.0/8"),
            ("DAS_TRUNK_UNTRUSTED", "ignore"),
            ("DAS_TRUNK_BACKOFF_MAX", "1m"),
        ],
    )
    .unwrap()
    .trunk
    .unwrap();
    assert_eq!(t.registrar.host, "trunk.example.net");
    // The registrar's transport parameter is the default transport.
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(t.username, "line1");
    assert_eq!(t.auth_username, "auth1");
    assert_eq!(t.password.expose(), "pw from env");
    assert_eq!(t.outbound_proxy.unwrap().uri, "sip:proxy.example.net");
    assert_eq!(t.expires, Duration::from_secs(120));
    assert_eq!(t.keepalive, Duration::from_secs(15));
    assert_eq!(t.external_address, Some("192.0.2.44".parse().unwrap()));
    assert_eq!(
        t.trust.unwrap(),
        [
            "203.0.113.0/24".parse::<IpNet>().unwrap(),
            "10.0.0.0/8".parse().unwrap()
        ]
    );
    assert_eq!(t.untrusted, Untrusted::Ignore);
    assert_eq!(t.backoff_max, Duration::from_secs(60));

    // The environment wins over the file; the password need not be in the file.
    let file = "[trunk]\nregistrar = \"sip:a.example\"\nusername = \"u\"\ntransport = \"udp\"\n";
    let t = with_env(
        file,
        &[("DAS_TRUNK_PASSWORD", "x"), ("DAS_TRUNK_TRANSPORT", "tcp")],
    )
    .unwrap()
    .trunk
    .unwrap();
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(t.password.expose(), "x");
}

#[test]
fn trunk_requires_registrar_username_and_one_password() {
    assert_eq!(
        error("[trunk]\n"),
        "/etc/das/das.toml: [trunk] registrar: required when the line registers with a trunk \
         (a SIP URI like \"sip:sip.example.com\", or DAS_TRUNK_REGISTRAR)"
    );
    // Any trunk variable asks for a trunk.
    let err = with_env("", &[("DAS_TRUNK_USERNAME", "u")]).unwrap_err();
    assert!(
        err.to_string().contains("[trunk] registrar: required"),
        "{err}"
    );
    assert!(
        error("[trunk]\nregistrar = \"sip:a.example\"\npassword = \"p\"")
            .contains("[trunk] username: required")
    );
    let no_password = error("[trunk]\nregistrar = \"sip:a.example\"\nusername = \"u\"");
    assert!(
        no_password.contains("[trunk] password: required"),
        "{no_password}"
    );
    assert!(no_password.contains("DAS_TRUNK_PASSWORD"), "{no_password}");
    assert!(
        error(&format!("{TRUNK}password_file = \"/run/secrets/pw\""))
            .contains("either password or password_file, not both")
    );
}

#[test]
fn trunk_password_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "from a file\n").unwrap();
    let config = dir.path().join("das.toml");
    let text = "[trunk]\nregistrar = \"sip:a.example\"\nusername = \"u\"\npassword_file = \"pw\"";
    std::fs::write(&config, text).unwrap();
    // Relative to the config file's folder.
    let t = Config::load_with_env(&config, no_env)
        .unwrap()
        .trunk
        .unwrap();
    assert_eq!(t.password.expose(), "from a file");

    std::fs::write(dir.path().join("pw"), "\n").unwrap();
    let err = Config::load_with_env(&config, no_env).unwrap_err();
    assert!(
        matches!(err, ConfigError::EmptyPasswordFile { .. }),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("pw")).unwrap();
    let err = Config::load_with_env(&config, no_env).unwrap_err();
    assert!(matches!(err, ConfigError::PasswordFile { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot read the trunk password file {}",
            dir.path().join("pw").display()
        )),
        "{err}"
    );
}

#[test]
fn bad_trunk_values() {
    let bad = |key_value: &str| error(&format!("{TRUNK}{key_value}"));
    assert!(
        bad("outbound_proxy = \"sips:secure.example\"").contains("sips (TLS) is not supported")
    );
    assert!(bad("outbound_proxy = \"sip:a b\"").contains("expected a SIP URI"));
    assert!(bad("outbound_proxy = \"sip:u@p.example\"").contains("the account goes in username"));
    assert!(bad("outbound_proxy = \"sip:host:0\"").contains("expected a SIP URI"));
    assert!(bad("outbound_proxy = \"sip:h;transport=sctp\"").contains("transport=sctp"));
    assert!(bad("auth_username = \"a@b\"").contains("[trunk] auth_username: expected a user name"));
    assert!(bad("expires = 5").contains("[trunk] expires: expected a duration of at least 10"));
    assert!(bad("transport = \"tls\"").contains("expected \"udp\" or \"tcp\", found \"tls\""));
    assert!(bad("keepalive = \"100ms\"").contains("[trunk] keepalive: expected 0 (off)"));
    assert!(bad("external_address = \"nat.example\"").contains("expected an IP address"));
    assert!(bad("untrusted = \"drop\"").contains("expected \"reject\" or \"ignore\""));
    assert!(bad("backoff_max = 0").contains("[trunk] backoff_max: expected a duration"));
    assert!(bad("trust = []").contains("leave trust out to take calls from anywhere"));
    assert!(bad("trust = [\"10.0.0.0/33\"]").contains("expected an IP address or network"));
    assert!(bad("trust = [\"example.com\"]").contains("expected an IP address or network"));
    assert!(bad("trust = [24]").contains("found the number 24"));
    assert_eq!(
        bad("trust = [\"203.0.113.5/24\"]"),
        "/etc/das/das.toml: [trunk] trust: \"203.0.113.5/24\" has host bits set: write \
         203.0.113.0/24 for the network, or 203.0.113.5 for the one address"
    );
    assert!(
        error(
            "[trunk]\nregistrar = \"sip:a.example;transport=tcp\"\nusername = \"u\"\n\
             password = \"p\"\ntransport = \"udp\""
        )
        .contains("disagrees with the registrar's transport parameter")
    );
    // The secret is not echoed back even when it is the wrong type.
    let err = error("[trunk]\nregistrar = \"sip:a\"\nusername = \"u\"\npassword = 1234");
    assert!(
        err.ends_with("[trunk] password: expected a password, found a number"),
        "{err}"
    );
    assert!(error("[trunk]\nregistar = \"sip:a\"").contains("unknown key [trunk] registar"));
}

#[test]
fn ip_networks() {
    let net = |text: &str| text.parse::<IpNet>().unwrap();
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    assert!(net("0.0.0.0/0").contains(ip("198.51.100.1")));
    assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(net("::/0").contains(ip("2001:db8::1")));
    assert!(net("192.0.2.128/25").contains(ip("192.0.2.255")));
    assert!(!net("192.0.2.128/25").contains(ip("192.0.2.127")));
    assert!(net("2001:db8::1").contains(ip("2001:db8::1")));
    assert!(!net("2001:db8::1").contains(ip("2001:db8::2")));
    assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("10.1.2.3").prefix, 32);
}

#[test]
fn shipped_trunk_example_parses_once_uncommented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/dial-a-service.toml")).unwrap();
    let (_, example) = text.split_once("# [trunk]\n").unwrap();
    let mut uncommented = String::from("[trunk]\n");
    for line in example.lines().filter_map(|l| l.strip_prefix("# ")) {
        let is_key = line.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        // password and password_file exclude each other; the example shows both.
        if is_key && !line.starts_with("password_file") {
            uncommented.push_str(line);
            uncommented.push('\n');
        }
    }
    let t = from(&uncommented).unwrap().trunk.unwrap();
    assert_eq!(t.registrar.uri, "sip:sip.example.com");
    // Every key is shown.
    for key in trunk::KEYS {
        assert!(
            text.contains(&format!("# {key} = ")),
            "{key} missing from the example"
        );
    }
}

#[test]
fn timezone_defaults_to_london_and_rejects_unknown_names() {
    let c = with_env("", &[]).unwrap();
    assert_eq!(c.line.timezone, chrono_tz::Europe::London);
    let error = with_env("[line]\ntimezone = \"Europe/Londn\"\n", &[]).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("[line] timezone") && text.contains("Europe/London"),
        "{text}"
    );
}

#[test]
fn a_misspelt_log_level_is_refused_with_the_nearest_one() {
    let message = error("[log]\nlevel = \"warning\"");
    assert!(
        message.contains("unknown log level \"warning\" (did you mean \"warn\"?)"),
        "{message}"
    );
    let message = with_env("", &[("DAS_LOG_LEVEL", "verbose")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("DAS_LOG_LEVEL") && message.contains("expected one of"),
        "{message}"
    );
    assert_eq!(from("[log]\nlevel = \"DEBUG\"").unwrap().log.level, "debug");
}

#[test]
fn an_unknown_das_variable_is_named_with_the_nearest_one() {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        check_environment(names(&[
            "PATH",
            "HOME",
            "DAS_SIP_LISTEN",
            "DAS_SOURCE_AUDIO"
        ]))
        .is_ok()
    );
    let message = check_environment(names(&["DAS_SOURCE_SCHEDUEL"]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "unknown environment variable DAS_SOURCE_SCHEDUEL (did you mean DAS_SOURCE_SCHEDULE?)"
    );
    let message = check_environment(names(&["DAS_WHATEVER"]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("DAS_<SECTION>_<KEY>"), "{message}");
}

#[test]
fn a_schedule_url_from_the_environment_takes_its_audio_from_beside_it_over_the_shipped_file() {
    // The README's website example: the shipped file pins `audio = "../audio"`
    // for its local sample schedule.
    let shipped = include_str!("../../config/dial-a-service.toml");
    let url = "https://stmarys.example/dial/data.json";
    let c = with_env(shipped, &[("DAS_SOURCE_SCHEDULE", url)]).unwrap();
    assert_eq!(
        c.source.audio,
        Location::Url("https://stmarys.example/dial/audio/".into())
    );
    // Set in the same place, it holds: a website's list with local audio.
    let c = with_env(
        shipped,
        &[
            ("DAS_SOURCE_SCHEDULE", url),
            ("DAS_SOURCE_AUDIO", "/srv/audio"),
        ],
    )
    .unwrap();
    assert_eq!(c.source.audio, Location::Path("/srv/audio".into()));
    let c = from(&format!(
        "[source]\nschedule = \"{url}\"\naudio = \"/srv/audio\""
    ))
    .unwrap();
    assert_eq!(c.source.audio, Location::Path("/srv/audio".into()));
    // The shipped file alone keeps its sample layout.
    let c = from(shipped).unwrap();
    assert_eq!(c.source.audio, Location::Path("/etc/das/../audio".into()));
}

#[test]
fn listening_everywhere_without_a_public_address_is_named() {
    let c = from("[sip]\nlisten = \"0.0.0.0:5060\"").unwrap();
    let problem = c.sip.advertised_address_problem().expect("a warning");
    assert!(problem.contains("public_address"), "{problem}");
    let c = from("[sip]\nlisten = \"0.0.0.0:5060\"\npublic_address = \"203.0.113.7\"").unwrap();
    assert_eq!(c.sip.advertised_address_problem(), None);
    assert_eq!(from("").unwrap().sip.advertised_address_problem(), None);
}

#[test]
fn the_call_log_defaults_to_the_cache_folder_and_can_be_moved_or_turned_off() {
    let c = from("[cache]\ndir = \"/var/lib/das\"\n").unwrap();
    assert_eq!(
        c.log.calls,
        CallLogConfig {
            path: Some(PathBuf::from("/var/lib/das/calls.jsonl")),
            caller_numbers: false,
            max_size: 10 * 1024 * 1024,
            keep: 5,
        }
    );
    let c = from(
        "[log]\ncalls = \"logs/calls.jsonl\"\ncaller_numbers = true\ncalls_max_size = \"512KiB\"\ncalls_keep = 2\n",
    )
    .unwrap();
    assert_eq!(
        c.log.calls,
        CallLogConfig {
            // Relative to the config file's folder, like every path in it.
            path: Some(PathBuf::from("/etc/das/logs/calls.jsonl")),
            caller_numbers: true,
            max_size: 512 * 1024,
            keep: 2,
        }
    );
    assert_eq!(from("[log]\ncalls = \"\"\n").unwrap().log.calls.path, None);
    let c = with_env(
        "",
        &[
            ("DAS_LOG_CALLS", "off"),
            ("DAS_LOG_CALLER_NUMBERS", "yes"),
            ("DAS_LOG_CALLS_MAX_SIZE", "1048576"),
            ("DAS_LOG_CALLS_KEEP", "9"),
        ],
    )
    .unwrap();
    assert_eq!(c.log.calls.path, None);
    assert!(c.log.calls.caller_numbers);
    assert_eq!(c.log.calls.max_size, 1 << 20);
    assert_eq!(c.log.calls.keep, 9);
    let c = with_env("", &[("DAS_LOG_CALLS", "here/calls.jsonl")]).unwrap();
    assert_eq!(c.log.calls.path, Some(PathBuf::from("here/calls.jsonl")));
}

#[test]
fn bad_call_log_values_are_named() {
    for (text, expected) in [
        ("[log]\ncalls = 3\n", "[log] calls: expected a file path"),
        (
            "[log]\ncaller_numbers = \"maybe\"\n",
            "[log] caller_numbers: expected true or false",
        ),
        (
            "[log]\ncalls_max_size = \"10 parsecs\"\n",
            "[log] calls_max_size: expected a size",
        ),
        (
            "[log]\ncalls_max_size = 100\n",
            "[log] calls_max_size: expected a size of at least 4 KiB",
        ),
        (
            "[log]\ncalls_keep = 0\n",
            "[log] calls_keep: expected a whole number",
        ),
        ("[log]\ncall = \"x\"\n", "unknown key [log] call"),
    ] {
        let message = error(text);
        assert!(message.contains(expected), "{text}: {message}");
    }
}

#[test]
fn admin_listener_defaults_to_loopback_and_an_empty_value_turns_it_off() {
    assert_eq!(
        from("").unwrap().admin.listen,
        Some("127.0.0.1:8080".parse().unwrap())
    );
    let c = from("[admin]\nlisten = \"0.0.0.0:9100\"").unwrap();
    assert_eq!(c.admin.listen, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(from("[admin]\nlisten = \"\"").unwrap().admin.listen, None);
    let c = with_env("", &[("DAS_ADMIN_LISTEN", "127.0.0.1:9999")]).unwrap();
    assert_eq!(c.admin.listen, Some("127.0.0.1:9999".parse().unwrap()));
    // Unlike other variables, an empty DAS_ADMIN_LISTEN is not "unset": it turns it off.
    let c = with_env(
        "[admin]\nlisten = \"127.0.0.1:9100\"",
        &[("DAS_ADMIN_LISTEN", "")],
    )
    .unwrap();
    assert_eq!(c.admin.listen, None);
}

#[test]
fn the_self_test_runs_every_quarter_hour_unless_set_otherwise_or_off() {
    assert_eq!(
        from("").unwrap().self_test.interval,
        Some(Duration::from_secs(15 * 60))
    );
    let c = from("[self_test]\ninterval = \"2m\"").unwrap();
    assert_eq!(c.self_test.interval, Some(Duration::from_secs(120)));
    assert_eq!(
        from("[self_test]\ninterval = 0")
            .unwrap()
            .self_test
            .interval,
        None
    );
    let c = with_env("", &[("DAS_SELF_TEST_INTERVAL", "0")]).unwrap();
    assert_eq!(c.self_test.interval, None);
    let c = with_env("", &[("DAS_SELF_TEST_INTERVAL", "30s")]).unwrap();
    assert_eq!(c.self_test.interval, Some(Duration::from_secs(30)));
    for bad in ["\"5s\"", "\"8 days\"", "-1", "\"often\""] {
        let message = error(&format!("[self_test]\ninterval = {bad}"));
        assert!(message.contains("[self_test] interval"), "{message}");
    }
    let message = error("[self_test]\ninterval = \"5s\"");
    assert!(
        message.contains("0 (no self-test) or a duration from 10 s"),
        "{message}"
    );
}

#[test]
fn admin_listener_mistakes_are_named() {
    let message = error("[admin]\nlisten = \"localhost\"");
    assert!(message.contains("[admin] listen"), "{message}");
    assert!(message.contains("127.0.0.1:8080"), "{message}");
    let message = error("[admin]\nport = 8080");
    assert!(message.contains("unknown key [admin] port"), "{message}");
    let message = with_env("", &[("DAS_ADMIN_LISTEN", "8080")])
        .unwrap_err()
        .to_string();
    assert!(message.contains("DAS_ADMIN_LISTEN"), "{message}");
}

#[test]
fn log_format_is_text_or_json_and_a_typo_names_the_nearest() {
    assert_eq!(from("").unwrap().log.format, LogFormat::Text);
    assert_eq!(
        from("[log]\nformat = \"JSON\"").unwrap().log.format,
        LogFormat::Json
    );
    assert_eq!(
        with_env("[log]\nformat = \"json\"", &[("DAS_LOG_FORMAT", "text")])
            .unwrap()
            .log
            .format,
        LogFormat::Text
    );
    let message = with_env("", &[("DAS_LOG_FORMAT", "jsn")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("DAS_LOG_FORMAT") && message.contains("did you mean \"json\""),
        "{message}"
    );
    assert!(from("[log]\nformat = 1").is_err());
}

#[test]
fn sip_trust_needs_no_trunk() {
    let c = with_env("", &[("DAS_SIP_TRUST", "127.0.0.1, 192.0.2.0/24")]).unwrap();
    assert_eq!(c.sip.trust.as_ref().map(Vec::len), Some(2));
    assert!(c.trunk.is_none());
    assert!(from("[sip]\ntrust = [\"not a network\"]").is_err());
    assert_eq!(from("").unwrap().sip.trust, None);
}

#[test]
fn loudness_defaults_file_and_environment() {
    let c = from("").unwrap();
    assert_eq!(c.audio.loudness.target, Lufs(-19.0));
    assert_eq!(c.audio.loudness.dynamics, Dynamics::Gentle);
    let c = from("[audio]\nloudness_target = -23\ndynamics = \"off\"\n").unwrap();
    assert_eq!(c.audio.loudness.target, Lufs(-23.0));
    assert_eq!(c.audio.loudness.dynamics, Dynamics::Off);
    let c = with_env(
        "[audio]\nloudness_target = -23\n",
        &[
            ("DAS_AUDIO_LOUDNESS_TARGET", "-16"),
            ("DAS_AUDIO_DYNAMICS", "off"),
        ],
    )
    .unwrap();
    assert_eq!(c.audio.loudness.target, Lufs(-16.0));
    assert_eq!(c.audio.loudness.dynamics, Dynamics::Off);
}

#[test]
fn loudness_mistakes_name_the_key_and_what_was_expected() {
    let message = error("[audio]\nloudness_target = 19\n");
    assert!(message.contains("[audio] loudness_target"), "{message}");
    assert!(message.contains("did you mean -19"), "{message}");
    let message = error("[audio]\ndynamics = \"gentel\"\n");
    assert!(message.contains("[audio] dynamics"), "{message}");
    assert!(message.contains("did you mean \"gentle\""), "{message}");
}
