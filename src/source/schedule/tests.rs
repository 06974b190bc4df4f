use super::*;

/// The example from the parish's format notes, verbatim.
const SEED: &str = r#"{
  "church_name": "St Mary's Church, Whitkirk",
  "services": [
{ "datetime": "2022-05-01T10:00:00+0100", "file": "2022-05-01-1000-easter-3.mp3" },
{ "title": "Choral Evensong", "datetime": "2022-05-01T18:00:00+0100", "file": "2022-05-01-1800-evensong.mp3" },
{ "title": "A Service of Thanksgiving in celebration of The Queen's Platinum Jubilee",
  "datetime": "2022-06-05T16:00:00+0100", "file": "2022-06-05-1600-jubilee.mp3" }
  ]
}"#;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn files<'a>(services: &[&'a Service]) -> Vec<&'a str> {
    services.iter().map(|s| s.file.as_str()).collect()
}

#[test]
fn seed_example_newest_first() {
    let schedule = Schedule::parse(SEED).unwrap();
    assert_eq!(schedule.church_name, "St Mary's Church, Whitkirk");
    assert!(schedule.problems.is_empty());
    assert_eq!(schedule.services.len(), 3);
    assert_eq!(schedule.services[0].title, None);
    assert_eq!(
        schedule.services[1].title.as_deref(),
        Some("Choral Evensong")
    );
    assert_eq!(
        schedule.services[0].datetime.offset().local_minus_utc(),
        3600
    );
    let now = utc("2022-07-01T00:00:00Z");
    assert_eq!(
        files(&schedule.available(now)),
        [
            "2022-06-05-1600-jubilee.mp3",
            "2022-05-01-1800-evensong.mp3",
            "2022-05-01-1000-easter-3.mp3"
        ]
    );
    assert_eq!(
        schedule.latest(now).unwrap().file,
        "2022-06-05-1600-jubilee.mp3"
    );
}

#[test]
fn file_order_does_not_matter() {
    let forward = Schedule::parse(SEED).unwrap();
    let mut reversed: Value = serde_json::from_str(SEED).unwrap();
    reversed["services"].as_array_mut().unwrap().reverse();
    let reversed = Schedule::parse(&reversed.to_string()).unwrap();
    let now = utc("2023-01-01T00:00:00Z");
    assert_eq!(forward.available(now), reversed.available(now));
}

#[test]
fn future_services_appear_when_their_time_comes() {
    let schedule = Schedule::parse(SEED).unwrap();
    // 16:00 +0100 is 15:00 UTC: one second before, the jubilee service is hidden.
    let before = utc("2022-06-05T14:59:59Z");
    assert_eq!(
        schedule.latest(before).unwrap().file,
        "2022-05-01-1800-evensong.mp3"
    );
    let at = utc("2022-06-05T15:00:00Z");
    assert_eq!(
        schedule.latest(at).unwrap().file,
        "2022-06-05-1600-jubilee.mp3"
    );
    assert!(schedule.available(utc("2022-01-01T00:00:00Z")).is_empty());
    assert_eq!(schedule.latest(utc("2022-01-01T00:00:00Z")), None);
}

#[test]
fn offsets_in_every_form() {
    let json = r#"{ "church_name": "St Example's", "services": [
        { "datetime": "2022-05-01T10:00:00+0100", "file": "a.mp3" },
        { "datetime": "2022-05-01T10:00:00+01:00", "file": "b.mp3" },
        { "datetime": "2022-05-01T09:00:00Z", "file": "c.mp3" },
        { "datetime": "2022-05-01T09:00:00.500Z", "file": "d.mp3" },
        { "datetime": "2022-05-01T04:00:00-0500", "file": "e.mp3" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let instants: Vec<DateTime<Utc>> = schedule
        .services
        .iter()
        .map(|s| s.datetime.with_timezone(&Utc))
        .collect();
    let nine = utc("2022-05-01T09:00:00Z");
    assert_eq!(instants[0], nine);
    assert_eq!(instants[1], nine);
    assert_eq!(instants[2], nine);
    assert_eq!(instants[3], utc("2022-05-01T09:00:00.5Z"));
    assert_eq!(instants[4], nine);
}

fn offset_of(schedule: &Schedule, file: &str) -> i32 {
    let service = schedule.services.iter().find(|s| s.file == file).unwrap();
    service.datetime.offset().local_minus_utc() / 3600
}

#[test]
fn local_times_take_the_offset_of_the_parish_time_zone() {
    // Europe/London: clocks go forward at 01:00 GMT on 29 March 2026 and
    // back at 02:00 BST on 25 October 2026.
    let json = r#"{ "church_name": "St Example's", "services": [
        { "datetime": "2026-03-29T00:30:00", "file": "before-spring.mp3" },
        { "datetime": "2026-03-29T01:30:00", "file": "spring-gap.mp3" },
        { "datetime": "2026-03-29T10:00:00", "file": "after-spring.mp3" },
        { "datetime": "2026-10-25T00:30:00", "file": "before-autumn.mp3" },
        { "datetime": "2026-10-25T01:30:00", "file": "autumn-twice.mp3" },
        { "datetime": "2026-10-25T10:00", "file": "after-autumn.mp3" },
        { "datetime": "2026-10-25T01:30:00+0000", "file": "autumn-explicit.mp3" }
    ]}"#;
    let schedule = Schedule::parse_in(json, chrono_tz::Europe::London).unwrap();
    assert_eq!(offset_of(&schedule, "before-spring.mp3"), 0);
    assert_eq!(offset_of(&schedule, "after-spring.mp3"), 1);
    assert_eq!(offset_of(&schedule, "before-autumn.mp3"), 1);
    assert_eq!(offset_of(&schedule, "after-autumn.mp3"), 0);
    assert_eq!(offset_of(&schedule, "autumn-explicit.mp3"), 0);
    assert_eq!(
        schedule.problems,
        [
            "service 2: datetime \"2026-03-29T01:30:00\" does not exist in Europe/London: the clocks go forward then",
            "service 5: datetime \"2026-10-25T01:30:00\" happens twice in Europe/London as the clocks go back: write 2026-10-25T01:30:00+0100 or 2026-10-25T01:30:00+0000",
        ]
    );
    // Another zone reads the same text differently.
    let new_york = Schedule::parse_in(json, chrono_tz::America::New_York).unwrap();
    assert_eq!(offset_of(&new_york, "before-spring.mp3"), -4);
}

#[test]
fn duplicates_are_reported_with_their_position_and_skipped() {
    let json = r#"{ "church_name": "St Example's", "services": [
        { "datetime": "2026-05-03T10:00:00", "file": "a.mp3" },
        { "datetime": "2026-05-03T10:00:00+0100", "file": "a.mp3", "title": "Again" },
        { "datetime": "2026-05-03T18:00:00", "file": "a.mp3" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    assert_eq!(schedule.services.len(), 2);
    assert_eq!(
        schedule.problems,
        ["service 2: a duplicate of service 1 (same time and file)"]
    );
}

#[test]
fn broken_entries_are_skipped_and_reported() {
    let json = r#"{ "church_name": "St Example's", "extra": true, "services": [
        { "datetime": "2022-05-01T10:00:00+0100", "file": "good.mp3", "duration": 3600 },
        { "datetime": "2022-05-01T10:00:00+0100" },
        { "datetime": "2022-13-01T10:00:00+0100", "file": "bad-month.mp3" },
        { "datetime": "1st May 2022", "file": "not-a-date.mp3" },
        { "datetime": 20220501, "file": "number.mp3" },
        { "datetime": "2022-05-01T10:00:00+0100", "file": 7 },
        { "datetime": "2022-05-01T10:00:00+0100", "file": "../../etc/passwd" },
        { "datetime": "2022-05-01T10:00:00+0100", "file": "/etc/passwd" },
        { "datetime": "2022-05-01T10:00:00+0100", "file": "x.mp3", "title": ["a"] },
        "not an object",
        { "datetime": "2022-05-02T10:00:00+0100", "file": "2022/also-good.mp3", "title": "" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    assert_eq!(
        schedule.problems,
        [
            "service 2: no \"file\"",
            "service 3: datetime \"2022-13-01T10:00:00+0100\" is not a date-time, like \"2022-05-01T10:00:00\" (local time) or \"2022-05-01T10:00:00+0100\"",
            "service 4: datetime \"1st May 2022\" is not a date-time, like \"2022-05-01T10:00:00\" (local time) or \"2022-05-01T10:00:00+0100\"",
            "service 5: datetime 20220501 is not a string",
            "service 6: file 7 is not a string",
            "service 7: file \"../../etc/passwd\" is neither a file name inside the audio folder nor an http(s) URL",
            "service 8: file \"/etc/passwd\" is neither a file name inside the audio folder nor an http(s) URL",
            "service 9: title [\"a\"] is not a string",
            "service 10: is not an object with \"datetime\" and \"file\"",
        ]
    );
    let now = utc("2030-01-01T00:00:00Z");
    assert_eq!(
        files(&schedule.available(now)),
        ["2022/also-good.mp3", "good.mp3"]
    );
    // An empty title is no title.
    assert_eq!(schedule.latest(now).unwrap().title, None);
}

#[test]
fn recorded_names_and_titles_are_read_and_checked() {
    let json = r#"{ "church_name": "St Example's", "church_name_audio": "names/church.mp3",
      "services": [
        { "datetime": "2026-05-03T10:00:00", "file": "a.mp3", "title": "Matins",
          "title_audio": "titles/matins.wav" },
        { "datetime": "2026-05-04T10:00:00", "file": "b.mp3", "title": "Evensong",
          "title_audio": "../evensong.wav" },
        { "datetime": "2026-05-05T10:00:00", "file": "c.mp3", "title_audio": 3 },
        { "datetime": "2026-05-06T10:00:00", "file": "d.mp3", "title_audio": "" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    assert_eq!(
        schedule.church_name_audio.as_deref(),
        Some("names/church.mp3")
    );
    let audio: Vec<Option<&str>> = schedule
        .services
        .iter()
        .map(|s| s.title_audio.as_deref())
        .collect();
    // Bad recordings are dropped, the services kept.
    assert_eq!(audio, [Some("titles/matins.wav"), None, None, None]);
    assert_eq!(
        schedule.problems,
        [
            "service 2: title_audio \"../evensong.wav\" is neither a file name inside the audio folder nor an http(s) URL",
            "service 3: title_audio 3 is not a string",
        ]
    );
    assert_eq!(schedule.services[1].title.as_deref(), Some("Evensong"));

    let bad_name = r#"{ "church_name": "St X", "church_name_audio": "/etc/passwd",
        "services": [] }"#;
    let schedule = Schedule::parse(bad_name).unwrap();
    assert_eq!(schedule.church_name_audio, None);
    assert_eq!(
        schedule.problems,
        [
            "church_name_audio \"/etc/passwd\" is neither a file name inside the audio folder nor an http(s) URL"
        ]
    );
}

#[test]
fn absolute_http_urls_are_files_too() {
    let json = r#"{ "church_name": "St Example's",
      "church_name_audio": "https://cdn.example.org/names/church.mp3",
      "services": [
        { "datetime": "2026-05-03T10:00:00", "file": "https://cdn.example.org/2026/matins.mp3",
          "title_audio": "http://cdn.example.org/titles/matins.wav" },
        { "datetime": "2026-05-04T10:00:00", "file": "HTTPS://CDN.Example.org/a b.mp3" },
        { "datetime": "2026-05-05T10:00:00", "file": "local.mp3",
          "title_audio": "https://cdn.example.org/titles/local.wav" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let files: Vec<&str> = schedule.services.iter().map(|s| s.file.as_str()).collect();
    // URLs are kept in their normal form: lower-case scheme and host, spaces escaped.
    assert_eq!(
        files,
        [
            "https://cdn.example.org/2026/matins.mp3",
            "https://cdn.example.org/a%20b.mp3",
            "local.mp3"
        ]
    );
    assert_eq!(
        schedule.church_name_audio.as_deref(),
        Some("https://cdn.example.org/names/church.mp3")
    );
    assert_eq!(
        schedule.services[0].title_audio.as_deref(),
        Some("http://cdn.example.org/titles/matins.wav")
    );
    let remote: Vec<bool> = files.iter().map(|f| is_remote(f)).collect();
    assert_eq!(remote, [true, true, false]);
}

#[test]
fn other_schemes_and_escapes_are_refused_by_name() {
    let json = r#"{ "church_name": "St Example's", "services": [
        { "datetime": "2026-05-03T10:00:00", "file": "file:///etc/passwd" },
        { "datetime": "2026-05-03T10:00:00", "file": "ftp://example.org/a.mp3" },
        { "datetime": "2026-05-03T10:00:00", "file": "javascript:alert(1)" },
        { "datetime": "2026-05-03T10:00:00", "file": "https://" },
        { "datetime": "2026-05-03T10:00:00", "file": "http:/example.org/a.mp3" },
        { "datetime": "2026-05-03T10:00:00", "file": "2026/../../a.mp3" },
        { "datetime": "2026-05-03T10:00:00", "file": "ok.mp3", "title_audio": "data:audio/wav;base64,AAAA" },
        { "datetime": "2026-05-04T10:00:00", "file": "10:00 matins.mp3" }
    ]}"#;
    let schedule = Schedule::parse(json).unwrap();
    let neither = "is neither a file name inside the audio folder nor an http(s) URL";
    assert_eq!(
        schedule.problems,
        [
            format!("service 1: file \"file:///etc/passwd\" {neither}"),
            format!("service 2: file \"ftp://example.org/a.mp3\" {neither}"),
            format!("service 3: file \"javascript:alert(1)\" {neither}"),
            format!("service 4: file \"https://\" {neither}"),
            format!("service 5: file \"http:/example.org/a.mp3\" {neither}"),
            format!("service 6: file \"2026/../../a.mp3\" {neither}"),
            format!("service 7: title_audio \"data:audio/wav;base64,AAAA\" {neither}"),
        ]
    );
    // A colon after digits is no scheme: a time in a file name is still a file name.
    let files: Vec<&str> = schedule.services.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(files, ["ok.mp3", "10:00 matins.mp3"]);
    assert_eq!(schedule.services[0].title_audio, None);
}

#[test]
fn is_remote_takes_only_absolute_http_urls() {
    for remote in [
        "https://example.org/a.mp3",
        "http://example.org:8080/a.mp3?x=1",
        "Https://example.org/",
    ] {
        assert!(is_remote(remote), "{remote}");
    }
    for local in [
        "a.mp3",
        "2026/a.mp3",
        "https",
        "https:a.mp3",
        "https:///a.mp3x",
        "file:///etc/passwd",
        "ftp://example.org/a.mp3",
        "//example.org/a.mp3",
        "",
        "é",
    ] {
        assert!(!is_remote(local), "{local}");
    }
}

#[test]
fn not_a_schedule_is_an_error() {
    let cases: [(&str, &str); 7] = [
        ("{", "schedule is not valid json: "),
        ("[]", "schedule is not a json object"),
        (r#"{"services": []}"#, "schedule has no \"church_name\""),
        (
            r#"{"church_name": "", "services": []}"#,
            "schedule's \"church_name\" is not a non-empty string",
        ),
        (
            r#"{"church_name": 3, "services": []}"#,
            "schedule's \"church_name\" is not a non-empty string",
        ),
        (r#"{"church_name": "St X"}"#, "schedule has no \"services\""),
        (
            r#"{"church_name": "St X", "services": {}}"#,
            "schedule's \"services\" is not an array",
        ),
    ];
    for (json, message) in cases {
        let err = Schedule::parse(json).unwrap_err().to_string();
        assert!(err.starts_with(message), "{json}: {err}");
    }
    // No services yet is a valid (if quiet) schedule.
    let empty = Schedule::parse(r#"{"church_name": "St X", "services": []}"#).unwrap();
    assert_eq!(empty.latest(Utc::now()), None);
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("data.json");
    let err = Schedule::load(&missing).unwrap_err();
    assert!(matches!(err, ScheduleError::Read { .. }));
    assert!(err.to_string().contains("data.json"), "{err}");

    std::fs::write(&missing, "{}").unwrap();
    let err = Schedule::load(&missing).unwrap_err().to_string();
    assert!(
        err.ends_with("data.json: schedule has no \"church_name\""),
        "{err}"
    );
}

#[test]
fn shipped_schedule_lists_the_sample_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schedule = Schedule::load(&root.join("config/data.json")).unwrap();
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let latest = schedule.latest(Utc::now()).unwrap();
    assert!(root.join("audio").join(&latest.file).is_file());
}
