//! `dial-a-service check` tells an operator, before any caller does,
//! whether the line will play the service or the apology.

use crate::common;

fn check(env: &[(&str, String)]) -> (bool, String) {
    common::run_check(env)
}

#[test]
fn the_shipped_config_checks_clean() {
    let (ok, text) = check(&[]);
    assert!(ok, "{text}");
    assert!(text.contains("all good"), "{text}");
    assert!(text.contains("latest: Sample Service"), "{text}");
}

#[test]
fn check_says_each_files_loudness_and_what_the_line_does_to_it() {
    let (ok, text) = check(&[("DAS_AUDIO_LOUDNESS_TARGET", "-16".to_owned())]);
    assert!(ok, "{text}");
    let service = text
        .lines()
        .find(|line| line.contains("sample-service.mp3 loudness:"))
        .unwrap_or_else(|| panic!("no loudness for the service: {text}"));
    // The shipped sample is quieter than -16 LUFS: raised to the target.
    assert!(
        service.contains("raised") && service.contains("to -16.0 LUFS"),
        "{service}"
    );
    assert!(service.contains("limiter"), "{service}");
    assert!(text.contains("apology clip loudness:"), "{text}");
    assert!(text.contains("prompt library loudness:"), "{text}");
    let (_, off) = check(&[("DAS_AUDIO_DYNAMICS", "off".to_owned())]);
    assert!(off.contains("compression off"), "{off}");
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

fn menu(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    common::run_cli(&[&["menu"], args].concat(), env)
}

#[test]
fn menu_prints_what_a_caller_hears_at_a_moment_and_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("data.json");
    std::fs::write(
        &schedule,
        r#"{ "church_name": "St Mary's Church, Whitkirk", "services": [
            { "title": "Choral Evensong", "datetime": "2022-05-01T18:00:00", "file": "e.mp3" },
            { "datetime": "2022-05-01T10:00:00+0100", "file": "m.mp3" },
            { "title": "Trinity Sunday", "datetime": "2022-06-12T10:00:00", "file": "t.mp3" },
            { "datetime": "2022-03-27T01:30:00", "file": "gap.mp3" } ] }"#,
    )
    .unwrap();
    let env = common::source_env(&schedule, dir.path());
    let (ok, text) = menu(&["--at", "2022-06-01T12:00:00"], &env);
    assert!(!ok, "the schedule has a problem: {text}");
    assert!(
        text.contains("Thanks for calling St Mary's Church, Whitkirk."),
        "{text}"
    );
    assert!(
        text.contains("Press 1 for the service from Choral Evensong, Sunday the 1st of May."),
        "{text}"
    );
    assert!(
        text.contains("For Sunday the 1st of May, press 2."),
        "{text}"
    );
    assert!(
        !text.contains("Trinity"),
        "a future service stays hidden: {text}"
    );
    assert!(
        text.contains("service 4:") && text.contains("clocks go forward"),
        "{text}"
    );

    let (_, text) = menu(&["--at", "2022-06-12T10:00:00"], &env);
    assert!(
        text.contains("Press 1 for the service from Trinity Sunday, Sunday the 12th of June."),
        "{text}"
    );
}

#[test]
fn menu_with_one_service_says_it_follows_the_greeting_and_with_none_the_apology() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("data.json");
    std::fs::write(
        &schedule,
        r#"{ "church_name": "St Anne's", "services": [
            { "title": "Harvest Festival", "datetime": "2026-10-04T10:00:00", "file": "h.mp3" } ] }"#,
    )
    .unwrap();
    let env = common::source_env(&schedule, dir.path());
    let (ok, text) = menu(&["--at", "2026-10-05T09:00:00"], &env);
    assert!(ok, "{text}");
    assert!(text.contains("Thanks for calling St Anne's."), "{text}");
    assert!(
        text.contains("The only service, Harvest Festival, plays straight after the greeting."),
        "{text}"
    );
    assert!(!text.contains("Press 1"), "{text}");

    let (ok, text) = menu(&["--at", "2026-10-01T09:00:00"], &env);
    assert!(!ok, "{text}");
    assert!(
        text.contains("Callers hear the apology clip")
            && text.contains("lists no service that has started yet"),
        "{text}"
    );
}
