//! The call log after real calls: our test client calls the real binary,
//! presses a key by RFC 4733 and hears one service to its end and another
//! part way; then the JSON lines are read back and `dial-a-service stats`
//! is run on them.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Datelike;
use dial_a_service::call_log::record::CallRecord;
use dial_a_service::client::{CallOptions, DtmfPress, HangUp, Key, KeyChannel, place_call};
use dial_a_service::media::Codec;

use common::{Line, ThreeServices, have_tool, repo};

fn tools() -> bool {
    have_tool("espeak-ng") && have_tool("sox") && have_tool("ffmpeg")
}

async fn call(line: &Line, from: &str, key: char, seconds: Option<u64>) -> HangUp {
    let mut options = CallOptions::new(line.uri(), Codec::Pcmu);
    options.from_user = from.to_owned();
    options.dtmf = vec![DtmfPress {
        at: Duration::from_millis(3_000),
        key: Key::from_char(key).unwrap(),
    }];
    options.dtmf_via = vec![KeyChannel::Rfc4733];
    options.seconds = seconds.map(Duration::from_secs);
    let report = place_call(options).await.expect("the call completes");
    eprintln!("{}", report.summary());
    assert_eq!(report.final_status, 200);
    report.hung_up_by
}

/// The log's records once it holds `count` (the writer has its own thread).
fn records(path: &Path, count: usize) -> Vec<CallRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let records: Vec<CallRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if records.len() >= count || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_call_is_one_line_and_stats_counts_callers_and_listens() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(8.0);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("calls.jsonl");
    let line = parish.line(&[("DAS_LOG_CALLS", log.display().to_string())]);

    // Key 2 in the menu: the middle service, heard to its end; the line
    // says goodbye and hangs up.
    let hung_up = call(&line, "01134960001", '2', None).await;
    assert!(matches!(hung_up, HangUp::FarEnd), "{hung_up:?}");
    // Key 3: the oldest, heard about 5 s of 8 before the caller hangs up.
    call(&line, "01134960002", '3', Some(8)).await;

    let records = records(&log, 2);
    assert_eq!(records.len(), 2, "{}", line.log_text());
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!("{text}");
    assert!(
        !text.contains("0113496000"),
        "no number without [log] caller_numbers: {text}"
    );

    let finished = &records[0];
    assert_eq!(finished.keys, "2");
    assert_eq!(finished.ended, "call.finished");
    assert_eq!(finished.codec, "pcmu");
    assert_eq!(finished.caller, None);
    assert_eq!(finished.services.len(), 1, "{finished:?}");
    let middle = &finished.services[0];
    assert_eq!(middle.title, "Middle");
    assert!(middle.date.starts_with("2024-02-02T10:00:00"), "{middle:?}");
    assert!(middle.completed, "{middle:?}");
    assert!((7.0..=9.5).contains(&middle.heard_s), "{middle:?}");
    assert!(finished.duration_s > middle.heard_s, "{finished:?}");

    let part_way = &records[1];
    assert_eq!(part_way.keys, "3");
    assert_eq!(part_way.ended, "call.caller_hung_up");
    let oldest = &part_way.services[0];
    assert_eq!(oldest.title, "Oldest");
    assert!(!oldest.completed, "{oldest:?}");
    assert!(
        (3.0..=6.5).contains(&oldest.heard_s),
        "heard part way: {oldest:?}"
    );
    assert!((6.0..=10.0).contains(&part_way.duration_s), "{part_way:?}");

    let hashes: Vec<_> = records.iter().map(|r| r.caller_hash.clone()).collect();
    assert!(
        hashes
            .iter()
            .all(|h| h.as_ref().is_some_and(|h| h.len() == 16)),
        "{hashes:?}"
    );
    assert_ne!(hashes[0], hashes[1], "two callers");

    let stats = |since: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dial-a-service"));
        command
            .current_dir(repo())
            .args(["stats", "--config", "config/dial-a-service.toml"])
            .env("DAS_LOG_CALLS", &log);
        if !since.is_empty() {
            command.args(["--since", since]);
        }
        let output = command.output().expect("run stats");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        eprintln!("{text}{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success());
        text
    };
    let all = stats("");
    assert!(all.contains("All calls in the log:"), "{all}");
    assert!(
        all.contains("2 calls, 2 distinct callers, 0 from withheld numbers"),
        "{all}"
    );
    // Heard to its end is a listen; 5 s of another is not.
    assert!(all.contains("  Middle (2024-02-02): 1\n"), "{all}");
    assert!(!all.contains("Oldest"), "{all}");
    let week = records[0].start.iso_week();
    let label = format!("{}-W{:02}", week.year(), week.week());
    assert!(all.contains(&format!("  {label} (from Monday")), "{all}");
    assert!(all.contains("    Middle (2024-02-02): 1\n"), "{all}");

    let later = stats("2999-01-01");
    assert!(later.contains("0 calls, 0 distinct callers"), "{later}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_opt_in_the_number_is_kept_and_a_call_cut_by_shutdown_is_logged() {
    if !tools() {
        return;
    }
    let parish = ThreeServices::new(30.0);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("calls.jsonl");
    let mut line = parish.line(&[
        ("DAS_LOG_CALLS", log.display().to_string()),
        ("DAS_LOG_CALLER_NUMBERS", "true".to_owned()),
    ]);
    let uri = line.uri();
    let caller = tokio::spawn(async move {
        let mut options = CallOptions::new(uri, Codec::Pcmu);
        options.from_user = "+441134960003".to_owned();
        place_call(options).await.expect("the call completes")
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(line.stop().is_some_and(|s| s.success()), "a clean exit");
    let report = caller.await.unwrap();
    assert!(matches!(report.hung_up_by, HangUp::FarEnd));

    // Written before the line exited: no waiting.
    let records = records(&log, 0);
    assert_eq!(records.len(), 1, "{}", line.log_text());
    let record = &records[0];
    assert_eq!(record.caller.as_deref(), Some("+441134960003"));
    assert_eq!(record.caller_hash.as_ref().map(String::len), Some(16));
    assert_eq!(record.ended, "line.shutdown");
    assert_eq!(record.keys, "");
    assert!((3.0..=6.0).contains(&record.duration_s), "{record:?}");
    assert!(
        dial_a_service::call_log::key_path(&log).exists(),
        "the caller key is kept beside the log"
    );
}
