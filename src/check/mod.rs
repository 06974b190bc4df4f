//! `dial-a-service check`: everything a caller depends on, checked now, as
//! the running line would meet it: the config, the apology clip and the
//! voice, the source (a fetched one fetched once: `source`), what callers
//! are offered and whether each file plays (`offer`, by the same code calls
//! use), and the trunk (`trunk`). Each line says ok, WARN or FAIL; each
//! failure says what to do; any failure exits non-zero.

mod loudness;
mod offer;
mod report;
mod source;
mod trunk;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::media::Codec;
use crate::media::track::{Track, TrackCache};
use crate::prompts::Prompts;

pub use offer::{Offered, Origin, offered};
pub use report::CheckReport;

/// Runs every check; `now` decides which services have started.
pub fn check(config: &Config, now: DateTime<Utc>) -> CheckReport {
    let mut report = CheckReport::default();
    if let Some(problem) = config.sip.advertised_address_problem() {
        report.warn(problem);
    }
    let mut tracks = TrackCache::new(1);
    tracks.set_loudness(config.audio.loudness);
    match tracks.open(&config.audio.apology, Codec::Pcmu) {
        Ok(track) => {
            report.ok(format!(
                "apology clip {} ({})",
                config.audio.apology.display(),
                length(&track)
            ));
            drop(track);
            check_level(
                config,
                "apology clip",
                &config.audio.apology,
                &tracks,
                &mut report,
            );
        }
        Err(error) => report.problem(format!(
            "apology clip: {error} (callers would hear built-in tones): put a WAV or MP3 there, \
             or set [audio] apology"
        )),
    }
    let prompts = check_voice(config, &mut report);
    let offered = offered(config, prompts);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            report.problem(format!("cannot start the network checks: {error}"));
            None
        }
    };
    match &offered.origin {
        Origin::LocalFile(path) => check_local_schedule(config, path, now, &mut report),
        Origin::Cache { .. } => {
            if let Some(runtime) = &runtime {
                let cached = crate::source::cache::DiskCache::open_to_look(&config.cache.dir)
                    .load_snapshot();
                runtime.block_on(source::check_fetched(config, cached.as_ref(), &mut report));
            }
        }
    }
    check_offer(config, &offered, now, &tracks, &mut report);
    if let (Some(trunk), Some(runtime)) = (&config.trunk, &runtime) {
        runtime.block_on(trunk::check_trunk(
            trunk,
            config.sip.t1,
            config.sip.user_agent.as_deref(),
            &mut report,
        ));
    }
    report
}

fn length(track: &Arc<Track>) -> String {
    match track.duration() {
        Some(d) => format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60),
        None => "length unknown".to_owned(),
    }
}

/// A local schedule's own problems (bad entries are skipped, not offered),
/// and how many services wait for their time.
fn check_local_schedule(
    config: &Config,
    path: &std::path::Path,
    now: DateTime<Utc>,
    report: &mut CheckReport,
) {
    // An unreadable schedule is said once, below, as what callers hear.
    let Ok(schedule) = crate::source::schedule::Schedule::load_in(path, config.line.timezone)
    else {
        return;
    };
    report.ok(format!(
        "schedule {} for {}",
        path.display(),
        schedule.church_name
    ));
    for problem in &schedule.problems {
        report.problem(format!("schedule: {problem}"));
    }
    let hidden = schedule.services.len() - schedule.available(now).len();
    if hidden > 0 {
        report.ok(format!(
            "{hidden} future service(s) hidden until their time"
        ));
    }
}

/// The loudness of `path` and what the line does to it (on G.711, what
/// most callers get).
fn check_level(
    config: &Config,
    what: &str,
    path: &std::path::Path,
    tracks: &TrackCache,
    report: &mut CheckReport,
) {
    match loudness::level_of(tracks, path, Codec::Pcmu) {
        Ok(level) => report.ok(format!(
            "{what} loudness: {}",
            loudness::describe(&level, config.audio.loudness)
        )),
        Err(error) => report.problem(format!(
            "{what}: {error}: callers hear it up to there, then the apology clip"
        )),
    }
}

/// What callers are offered now, and whether each service plays.
fn check_offer(
    config: &Config,
    offered: &Offered,
    now: DateTime<Utc>,
    tracks: &TrackCache,
    report: &mut CheckReport,
) {
    if let Origin::Cache {
        source,
        fetched_at,
        lost,
    } = &offered.origin
    {
        match fetched_at {
            Some(at) => report.ok(format!(
                "the disk cache holds the schedule from {source} fetched {}",
                at.format("%-d %B %Y at %H:%M UTC")
            )),
            None => report.warn(format!(
                "nothing from {source} is in the disk cache yet: the running line fetches it \
                 at start, and callers hear the apology clip until it has"
            )),
        }
        if *lost > 0 {
            report.warn(format!(
                "{lost} cached service(s) lost their audio; the running line downloads them again"
            ));
        }
    }
    if let Origin::Cache {
        fetched_at: None, ..
    } = offered.origin
    {
        return; // nothing to offer yet, as said above
    }
    let menu = match offered.content.offer(now) {
        Ok(menu) => menu,
        Err(reason) => {
            report.problem(format!("callers hear the apology clip: {reason}"));
            return;
        }
    };
    for (i, item) in menu.items.iter().enumerate() {
        let service = &item.service;
        let title = service.title.as_deref().unwrap_or("(no title)");
        let path = offered.content.service_path(&service.file);
        let what = format!(
            "{}{title}, {}: {}",
            if i == 0 { "latest: " } else { "" },
            service.datetime,
            crate::source::redact_if_url(&path.display().to_string())
        );
        match tracks.open(&path, Codec::Pcmu) {
            Ok(track) => {
                report.ok(format!("{what} ({})", length(&track)));
                drop(track);
                check_level(config, &what, &path, tracks, report);
            }
            Err(error) => report.problem(format!(
                "{what}: {error}: callers who choose it hear the apology clip; replace the file \
                 or correct the schedule"
            )),
        }
    }
}

/// The prompt library, and whether names and titles can be spoken. The
/// library, loaded, is what the offered content speaks with.
fn check_voice(config: &Config, report: &mut CheckReport) -> Prompts {
    let prompts = Prompts::load(&config.audio.prompts, &[Codec::Pcmu], None);
    match prompts.missing() {
        [] => report.ok(format!("prompt library {}", config.audio.prompts.display())),
        missing => {
            for prompt in missing {
                report.problem(format!(
                    "prompt {:?}: {} (the word is spoken by espeak-ng instead, or left out)",
                    prompt.name, prompt.reason
                ));
            }
        }
    }
    if let Some(measured) = prompts.library_loudness(Codec::Pcmu.sample_rate_hz()) {
        let gain = crate::media::level::gain::gain_to(config.audio.loudness.target, measured);
        report.ok(format!(
            "prompt library loudness: {measured} as a whole, {} {:.1} dB with every \
             sentence to {} like the services",
            if gain >= 0.0 { "raised" } else { "lowered" },
            gain.abs(),
            config.audio.loudness.target
        ));
    }
    let runs = std::process::Command::new(&config.speech.command)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if runs {
        report.ok(format!(
            "speech: {} speaks names and titles",
            config.speech.command.display()
        ));
    } else {
        // Not a failure: recordings (title_audio) or dates alone still work.
        report.ok(format!(
            "speech: {} cannot be run, so names and titles without a recording are left out",
            config.speech.command.display()
        ));
    }
    prompts
}
