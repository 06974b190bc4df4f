//! Reading the log tolerantly and summing it up.

use super::*;

fn record(start: &str, caller: Option<&str>, services: &[(&str, f64, bool)]) -> CallRecord {
    CallRecord {
        start: start.parse().unwrap(),
        caller: None,
        caller_hash: caller.map(str::to_owned),
        duration_s: 60.0,
        keys: String::new(),
        services: services
            .iter()
            .map(|(title, heard_s, completed)| ServiceHeard {
                title: (*title).to_owned(),
                date: "2026-11-01T10:30:00+00:00".to_owned(),
                heard_s: *heard_s,
                completed: *completed,
                failed: false,
            })
            .collect(),
        ended: "call.caller_hung_up".to_owned(),
        codec: "pcmu".to_owned(),
        self_test: false,
    }
}

fn sample() -> Vec<CallRecord> {
    let mut test_call = record(
        "2026-11-03T09:00:00Z",
        Some("aaaa"),
        &[("Mass", 99.0, true)],
    );
    test_call.self_test = true;
    vec![
        // Week of Monday 26 October.
        record(
            "2026-10-31T09:00:00Z",
            Some("aaaa"),
            &[("Mass", 31.0, false)],
        ),
        // Week of Monday 2 November.
        record(
            "2026-11-02T09:00:00Z",
            Some("aaaa"),
            &[("Mass", 5.0, false), ("Evensong", 12.0, true)],
        ),
        record(
            "2026-11-04T09:00:00Z",
            Some("bbbb"),
            &[("Mass", 30.0, false)],
        ),
        record(
            "2026-11-05T09:00:00Z",
            Some("anonymous"),
            &[("Mass", 29.9, false)],
        ),
        test_call,
    ]
}

#[test]
fn calls_callers_and_listens_per_service_and_week() {
    let summary = summarise(&sample(), None);
    assert_eq!(summary.calls, 4, "the self-test call is left out");
    assert_eq!(summary.distinct_callers, 2);
    assert_eq!(summary.withheld, 1);
    let mass = "Mass (2026-11-01)".to_owned();
    let evensong = "Evensong (2026-11-01)".to_owned();
    assert_eq!(
        summary.listens,
        BTreeMap::from([(evensong.clone(), 1), (mass.clone(), 2)])
    );
    let weeks: Vec<_> = summary.weeks.keys().map(|d| d.to_string()).collect();
    assert_eq!(weeks, ["2026-10-26", "2026-11-02"]);
    let november = &summary.weeks[&NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()];
    assert_eq!(november.calls, 3);
    assert_eq!(november.distinct_callers, 2);
    assert_eq!(november.listens, BTreeMap::from([(evensong, 1), (mass, 1)]));

    let text = summary.to_string();
    assert!(
        text.contains("4 calls, 2 distinct callers, 1 from withheld numbers"),
        "{text}"
    );
    assert!(text.contains("  Mass (2026-11-01): 2"), "{text}");
    assert!(
        text.contains("2026-W45 (from Monday 2 November 2026): 3 calls, 2 distinct callers"),
        "{text}"
    );
}

#[test]
fn since_a_day_or_a_moment() {
    let since = parse_since("2026-11-02").unwrap();
    assert_eq!(since.to_rfc3339(), "2026-11-02T00:00:00+00:00");
    let summary = summarise(&sample(), Some(since));
    assert_eq!(summary.calls, 3);
    assert_eq!(summary.weeks.len(), 1);
    assert!(
        summary
            .to_string()
            .starts_with("Calls since 2 November 2026 00:00 UTC:")
    );
    let since = parse_since("2026-11-04T10:00:00+01:00").unwrap();
    assert_eq!(summarise(&sample(), Some(since)).calls, 2);
    for bad in ["yesterday", "2026-13-01", ""] {
        assert!(parse_since(bad).is_err(), "{bad}");
    }
}

#[test]
fn garbage_cut_short_and_over_long_lines_are_skipped() {
    let good = record(
        "2026-11-02T09:00:00Z",
        Some("aaaa"),
        &[("Mass", 40.0, false)],
    )
    .to_line();
    let long = "x".repeat(MAX_LINE * 3);
    let text = format!(
        "{good}\nnot json\n\n{{\"start\":\"never\"}}\n{long}\n{good}\n\u{0}\u{ff}garbage\n{}",
        &good[..good.len() / 2]
    );
    let mut records = Records::default();
    read_lines(text.as_bytes(), &mut records).unwrap();
    assert_eq!(records.records.len(), 2);
    assert_eq!(records.skipped, 5);
}

#[test]
fn rotated_files_are_read_oldest_first_and_a_missing_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.jsonl");
    assert_eq!(summarise_file(&path, None).unwrap().calls, 0);
    let at = |day: u32| record(&format!("2026-11-{day:02}T09:00:00Z"), Some("a"), &[]).to_line();
    std::fs::write(rotated(&path, 2), format!("{}\n", at(1))).unwrap();
    std::fs::write(rotated(&path, 1), format!("{}\n", at(2))).unwrap();
    std::fs::write(&path, format!("{}\n{{\"start\":", at(3))).unwrap();
    let records = read_records(&path).unwrap();
    let days: Vec<u32> = records.records.iter().map(|r| r.start.day()).collect();
    assert_eq!(days, [1, 2, 3]);
    assert_eq!(records.skipped, 1);
    let summary = summarise_file(&path, None).unwrap();
    assert_eq!(summary.calls, 3);
    assert!(
        summary
            .to_string()
            .contains("1 line of the log could not be read")
    );
}
