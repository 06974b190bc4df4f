//! Defaults, overrides and the messages a mistyped config gets.

use std::collections::HashMap;

use super::*;

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
    assert_eq!(c.source.schedule, Path::new("/etc/das/data.json"));
    assert_eq!(c.source.audio, Path::new("/etc/das/audio"));
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
    assert_eq!(c.source.schedule, Path::new("/srv/parish/data.json"));
    assert_eq!(c.source.audio, Path::new("/srv/parish/audio"));
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
    assert_eq!(c.source.schedule, Path::new("parish/data.json"));
    assert_eq!(c.source.audio, Path::new("/var/audio"));
    assert_eq!(c.audio.apology, Path::new("sorry.wav"));
    assert_eq!(c.log.level, "warn");

    // An empty variable is treated as unset.
    let c = with_env(file, &[("DAS_SIP_LISTEN", "")]).unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070".parse().unwrap());
    // The audio default follows an env-given schedule.
    let c = with_env("", &[("DAS_SOURCE_SCHEDULE", "/srv/p/data.json")]).unwrap();
    assert_eq!(c.source.audio, Path::new("/srv/p/audio"));
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
         (known keys in [media]: rtp_ports, codecs, max_cached_tracks)"
    );
    assert_eq!(
        error("[meda]\nrtp_ports = \"20000-20001\"\n"),
        "/etc/das/das.toml: unknown section [meda] (known sections: sip, media, source, audio, log)"
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
        syntax.starts_with("/etc/das/das.toml: not valid toml: "),
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
    assert_eq!(c.source.schedule, dir.path().join("sched/data.json"));
    assert_eq!(c.source.audio, dir.path().join("../audio"));

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
    assert!(
        c.source.schedule.is_file(),
        "{}",
        c.source.schedule.display()
    );
    assert!(c.source.audio.join("sample-service.mp3").is_file());
    assert!(c.audio.apology.is_file(), "{}", c.audio.apology.display());
}

#[test]
fn env_names() {
    assert_eq!(env_name("media", "rtp_ports"), "DAS_MEDIA_RTP_PORTS");
}
