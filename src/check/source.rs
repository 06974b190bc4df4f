//! A fetched source checked now: the schedule or feed fetched once, as the
//! line's refresher would (same client, same limits, same parser), and each
//! service it offers found in the disk cache or reached at its URL. Every
//! failure is named plainly (the name does not resolve, the certificate
//! expired, the page is not there) with what to do, and with what callers
//! hear meanwhile.

use std::time::Duration;

use crate::config::{Config, Location};
use crate::source::cache::{DiskCache, Snapshot};
use crate::source::http::{FetchError, Fetched, Http, HttpConfig, Validators};
use crate::source::redact::Redacted;
use crate::source::refresher::{self, AudioRef};
use crate::source::schedule::Schedule;

use super::CheckReport;

/// One audio URL may take this long to answer.
const AUDIO_TIMEOUT: Duration = Duration::from_secs(15);

/// Fetches the schedule and looks for each service's audio; `cached` is
/// what callers hear if the fetch fails.
pub async fn check_fetched(config: &Config, cached: Option<&Snapshot>, report: &mut CheckReport) {
    let meanwhile = match cached {
        Some(snapshot) => format!(
            "meanwhile callers hear the copy fetched {} ({} service(s))",
            snapshot.fetched_at.format("%-d %B %Y at %H:%M UTC"),
            snapshot.services.len()
        ),
        None => "and nothing is in the cache yet, so callers hear the apology clip".to_owned(),
    };
    if config.source.insecure_skip_verify {
        report.warn(
            "[source] insecure_skip_verify is on: any certificate is accepted, so anyone on \
             the way can change what callers hear; turn it off (or set [source] ca_file)"
                .to_owned(),
        );
    }
    let http = match Http::new(&HttpConfig {
        ca_file: config.source.ca_file.clone(),
        insecure_skip_verify: config.source.insecure_skip_verify,
        ..HttpConfig::default()
    }) {
        Ok(http) => http,
        Err(error) => {
            report.problem(format!("{error}: {}", advice(&error)));
            return;
        }
    };
    let (bytes, base) = match &config.source.schedule {
        Location::Url(url) => match http
            .fetch(
                url.as_str(),
                &Validators::default(),
                refresher::MAX_SCHEDULE_BYTES,
                refresher::SCHEDULE_TIMEOUT,
            )
            .await
        {
            Ok(Fetched::Body {
                bytes, final_url, ..
            }) => (bytes, Some(final_url)),
            // Asked unconditionally, so a 304 is the server's mistake.
            Ok(Fetched::NotModified) => {
                report.problem(format!(
                    "schedule {}: answered 304 Not Modified to a plain GET; {meanwhile}",
                    Redacted(url.as_str())
                ));
                return;
            }
            Err(error) => {
                report.problem(format!(
                    "schedule: {error}: {}; {meanwhile}",
                    advice(&error)
                ));
                return;
            }
        },
        Location::Path(path) => match std::fs::read(path) {
            Ok(bytes) => (bytes, None),
            Err(error) => {
                report.problem(format!(
                    "schedule {}: cannot be read ({error}); {meanwhile}",
                    path.display()
                ));
                return;
            }
        },
    };
    let schedule = match refresher::parse(&bytes, base.as_deref(), config.line.timezone) {
        Ok(schedule) => schedule,
        Err((_, reason)) => {
            report.problem(format!(
                "schedule {}: {reason}; fix the file on the website; {meanwhile}",
                config.source.schedule
            ));
            return;
        }
    };
    report.ok(format!(
        "schedule {} fetched now: {}, {} service(s)",
        Redacted(&config.source.schedule.to_string()),
        schedule.church_name,
        schedule.services.len()
    ));
    for problem in &schedule.problems {
        report.problem(format!("schedule: {problem}"));
    }
    check_audio(config, &schedule, &http, report).await;
}

/// The newest `keep_latest` services: in the cache already, or reachable.
async fn check_audio(config: &Config, schedule: &Schedule, http: &Http, report: &mut CheckReport) {
    let cache = DiskCache::open_to_look(&config.cache.dir);
    let now = chrono::Utc::now();
    let available = schedule.available(now);
    if available.is_empty() {
        report.problem(
            "the schedule lists no service that has started yet, so callers hear the apology clip"
                .to_owned(),
        );
    }
    for service in available.into_iter().take(config.cache.keep_latest) {
        let what = format!(
            "{}, {}",
            service.title.as_deref().unwrap_or("(no title)"),
            service.datetime
        );
        match refresher::audio_ref(&config.source.audio, &service.file) {
            AudioRef::Local(path) if path.is_file() => {
                report.ok(format!("{what}: {}", path.display()));
            }
            AudioRef::Local(path) => report.problem(format!(
                "{what}: {} is not there; put the file there or correct the schedule",
                path.display()
            )),
            AudioRef::Remote(url) if cache.get(&url, false).is_some() => {
                report.ok(format!("{what}: downloaded and checked"));
            }
            AudioRef::Remote(url) => match http.reachable(&url, AUDIO_TIMEOUT).await {
                Ok(length) => report.ok(format!(
                    "{what}: {} can be fetched{}; the running line downloads it",
                    Redacted(&url),
                    length.map_or(String::new(), |n| format!(
                        " ({:.1} MB)",
                        n as f64 / 1_000_000.0
                    ))
                )),
                Err(error) => report.problem(format!(
                    "{what}: {error}: {}; the line offers it once it can be downloaded",
                    advice(&error)
                )),
            },
        }
    }
}

/// What to do about a fetch failure, in words a volunteer can act on.
fn advice(error: &FetchError) -> &'static str {
    match error {
        FetchError::BadUrl { .. } => "correct the address in [source] schedule (or audio)",
        FetchError::Dns { .. } => {
            "the website's name does not resolve: check its spelling in the config, and that \
             this machine can look up names (try: getent hosts <name>)"
        }
        FetchError::Connect { .. } => {
            "nothing answers at that address: is the website up, and is the port right? \
             A firewall here may also block outgoing connections"
        }
        FetchError::Certificate { .. } => {
            "the website's certificate is not accepted: whoever runs the website must renew or \
             fix it (a parish's own certificate authority goes in [source] ca_file); check \
             this machine's clock too"
        }
        FetchError::Tls { .. } => {
            "the secure connection failed: the website's HTTPS set-up needs looking at"
        }
        FetchError::Status { status: 404, .. } | FetchError::Status { status: 410, .. } => {
            "there is no file at that address: check the address, or whether the file moved"
        }
        FetchError::Status { status: 401, .. } | FetchError::Status { status: 403, .. } => {
            "the website refuses to give the file: it must be public, or the address is wrong"
        }
        FetchError::Status { status, .. } if *status >= 500 => {
            "the website has trouble of its own: try again later, or tell whoever runs it"
        }
        FetchError::Status { .. } => "the website did not give the file: check the address",
        FetchError::Timeout { .. } | FetchError::Stalled { .. } => {
            "the website is too slow to answer: try again, or tell whoever runs it"
        }
        FetchError::TooLarge { .. } => "that address does not hold a schedule: check it",
        FetchError::Redirect { .. } | FetchError::InsecureRedirect { .. } => {
            "the website sends us elsewhere in a way the line refuses: give the final https address"
        }
        FetchError::Protocol { .. } | FetchError::Body { .. } => {
            "the website broke off its answer: try again, or tell whoever runs it"
        }
        FetchError::Io { .. } => "the disk here has trouble: check space and permissions",
        FetchError::CaFile { .. } => "fix [source] ca_file: a PEM file of certificates",
        FetchError::Client { .. } => "the HTTPS client could not start: check [source] ca_file",
    }
}
