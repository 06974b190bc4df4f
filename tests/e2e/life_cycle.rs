//! The line's life as a service (issue 10): SIGTERM lets calls in progress
//! play on for `[line] shutdown_grace` while new calls get 503, then hangs
//! up and exits 0; SIGHUP reloads the config file and the schedule without
//! dropping a call, and refuses a broken config, keeping the old one.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Line, Parish, have_tool, repo};
use dial_a_service::client::{CallOptions, HangUp, place_call};
use dial_a_service::media::Codec;

fn have_tools() -> bool {
    ["espeak-ng", "sox", "ffmpeg"].iter().all(|t| have_tool(t))
}

fn signal(line: &Line, signal: libc::c_int) {
    // SAFETY: kill(2) on the line's own process.
    let sent = unsafe { libc::kill(line.pid() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({}, {signal})", line.pid());
}

/// Waits up to `limit` for the line's log to contain `needle`.
fn wait_for_log(line: &Line, needle: &str, limit: Duration) -> bool {
    wait_for_lines(line, needle, 1, limit)
}

/// Waits up to `limit` for `count` lines of the log containing `needle`.
fn wait_for_lines(line: &Line, needle: &str, count: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if line.log_count(needle) >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn sigterm_lets_the_call_in_progress_play_on_refuses_new_ones_and_exits_0() {
    if !have_tools() {
        return;
    }
    let parish = Parish::new(
        "Evensong",
        "O Lord, open thou our lips, and our mouth shall show forth thy praise.",
        30.0,
    );
    let mut env = parish.env();
    env.push(("DAS_LINE_SHUTDOWN_GRACE", "4s".to_owned()));
    let mut line = Line::start(&env);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let listening = runtime.spawn(place_call(CallOptions::new(line.uri(), Codec::Pcmu)));
    assert!(
        wait_for_log(&line, "call answered", Duration::from_secs(10)),
        "{}",
        line.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let terminated = Instant::now();
    signal(&line, libc::SIGTERM);
    assert!(
        wait_for_log(&line, "line.draining", Duration::from_secs(2)),
        "{}",
        line.log_text()
    );

    // A new caller meanwhile: 503, so a proxy in front tries another line.
    let refused = runtime
        .block_on(place_call(CallOptions::new(line.uri(), Codec::Pcmu)))
        .expect("the refused call runs");
    assert_eq!(refused.final_status, 503, "{}", refused.summary());

    // The first caller hears on until the grace is over, then the line's BYE.
    let report = runtime
        .block_on(listening)
        .expect("the call task")
        .expect("the call runs");
    let ended_after = terminated.elapsed();
    assert!(
        matches!(report.hung_up_by, HangUp::FarEnd),
        "the line hangs up: {}",
        report.summary()
    );
    assert!(
        ended_after >= Duration::from_millis(3_500) && ended_after < Duration::from_secs(8),
        "BYE {ended_after:?} after SIGTERM, with a 4 s grace: {}",
        report.summary()
    );
    assert!(
        report.stats.seq_contiguous && report.stats.lost == 0,
        "{}",
        report.summary()
    );
    assert!(
        report.heard() > Duration::from_secs(5),
        "{}",
        report.summary()
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if !line.is_running() || Instant::now() > deadline {
            break line.stop();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}",
        line.log_text()
    );
    assert_eq!(
        line.log_count("shutting down: hanging up"),
        1,
        "{}",
        line.log_text()
    );
    assert_eq!(line.log_count("call ended: the line is shutting down"), 1);
    assert_eq!(line.log_count("line.stopped"), 1, "{}", line.log_text());
}

/// A parish whose one service is `name` (a copy of the parish's MP3).
fn with_service_named(parish: &Parish, name: &str) {
    std::fs::copy(
        parish.audio_dir().join("service.mp3"),
        parish.audio_dir().join(name),
    )
    .expect("copy the service");
    let schedule = std::fs::read_to_string(parish.schedule()).expect("data.json");
    std::fs::write(parish.schedule(), schedule.replace("service.mp3", name)).expect("data.json");
}

fn config_for(path: &Path, parish: &Parish, extra: &str) {
    let audio = repo().join("audio");
    let text = format!(
        "[source]\nschedule = {:?}\naudio = {:?}\n\n[audio]\napology = {:?}\nprompts = {:?}\n\n{extra}",
        parish.schedule().display().to_string(),
        parish.audio_dir().display().to_string(),
        audio.join("apology.wav").display().to_string(),
        audio.join("prompts").display().to_string(),
    );
    std::fs::write(path, text).expect("write the config");
}

#[test]
fn sighup_reloads_config_and_schedule_and_refuses_a_broken_config() {
    if !have_tools() {
        return;
    }
    let first = Parish::new("Matins", "Venite, exultemus Domino.", 2.0);
    with_service_named(&first, "matins.mp3");
    let second = Parish::new("Compline", "Keep me as the apple of an eye.", 2.0);
    with_service_named(&second, "compline.mp3");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("line.toml");
    config_for(&config, &first, "");
    let mut line = Line::start_with_config(&config, &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listen = |line: &Line| {
        runtime
            .block_on(place_call(CallOptions::new(line.uri(), Codec::Pcmu)))
            .expect("the call runs")
    };

    let before = listen(&line);
    assert_eq!(before.final_status, 200, "{}", before.summary());
    assert_eq!(
        line.log_count("playing service matins.mp3"),
        1,
        "{}",
        line.log_text()
    );

    // A call in progress while the config changes under it and SIGHUP comes.
    let during = runtime.spawn(place_call(CallOptions::new(line.uri(), Codec::Pcmu)));
    // Its answer, not the first call's.
    assert!(wait_for_lines(
        &line,
        "call answered",
        2,
        Duration::from_secs(10)
    ));
    config_for(&config, &second, "[line]\nmenu_timeout = \"5s\"\n");
    signal(&line, libc::SIGHUP);
    assert!(
        wait_for_log(&line, "config.reloaded", Duration::from_secs(5)),
        "{}",
        line.log_text()
    );
    let during = runtime
        .block_on(during)
        .expect("task")
        .expect("the call runs");
    assert!(
        matches!(during.hung_up_by, HangUp::FarEnd) && during.stats.seq_contiguous,
        "the call in progress plays to its goodbye: {}",
        during.summary()
    );
    assert!(line.is_running(), "SIGHUP must not stop the line");
    assert_eq!(
        line.log_count("playing service matins.mp3"),
        2,
        "the call answered before the reload keeps its service:\n{}",
        line.log_text()
    );

    let after = listen(&line);
    assert_eq!(after.final_status, 200, "{}", after.summary());
    assert_eq!(
        line.log_count("playing service compline.mp3"),
        1,
        "the next call hears the new config's schedule:\n{}",
        line.log_text()
    );

    // A broken config: one line saying so, and the running one is kept.
    std::fs::write(&config, "[line]\nmenu_timeout = \"forever\"\n").expect("write");
    signal(&line, libc::SIGHUP);
    assert!(
        wait_for_log(&line, "config.reload_refused", Duration::from_secs(5)),
        "{}",
        line.log_text()
    );
    assert_eq!(
        line.log_count("config.reload_refused"),
        1,
        "{}",
        line.log_text()
    );
    let kept = listen(&line);
    assert_eq!(kept.final_status, 200, "{}", kept.summary());
    assert_eq!(
        line.log_count("playing service compline.mp3"),
        2,
        "{}",
        line.log_text()
    );
    assert!(line.is_running());
}
