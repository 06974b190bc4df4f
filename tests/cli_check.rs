//! `dial-a-service check` tells an operator, before any caller does,
//! whether the line will play the service or the apology.

mod common;

use std::process::Command;

fn check(env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dial-a-service"));
    command
        .current_dir(common::repo())
        .args(["check", "--config", "config/dial-a-service.toml"]);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run dial-a-service check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn the_shipped_config_checks_clean() {
    let (ok, text) = check(&[]);
    assert!(ok, "{text}");
    assert!(text.contains("all good"), "{text}");
    assert!(text.contains("latest: Sample Service"), "{text}");
}

#[test]
fn a_broken_schedule_and_a_missing_file_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("data.json");
    std::fs::write(
        &schedule,
        r#"{ "church_name": "St Test's", "services": [
            { "datetime": "2024-05-01T10:00:00+0100", "file": "missing.mp3" },
            { "datetime": "not a date", "file": "x.mp3" } ] }"#,
    )
    .unwrap();
    let (ok, text) = check(&common::source_env(&schedule, dir.path()));
    assert!(!ok, "{text}");
    assert!(
        text.contains("missing.mp3"),
        "names the missing file: {text}"
    );
    assert!(text.contains("service 2"), "names the broken entry: {text}");
}

#[test]
fn a_bad_config_value_names_the_key() {
    let (ok, text) = check(&[("DAS_MEDIA_CODECS", "g729".to_owned())]);
    assert!(!ok);
    assert!(
        text.contains("DAS_MEDIA_CODECS") && text.contains("[media] codecs"),
        "{text}"
    );
}
