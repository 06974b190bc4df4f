//! `GET /`: the line's state in plain English for a church volunteer,
//! readable on a phone: one HTML page rendered on the server, no script.
//!
//! Every string from the schedule, the website or an error message is
//! escaped ([`esc`]): a service title is whatever the website says.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::snapshot::{LineSnapshot, SourceProblem, SourceView, TrunkState, TrunkView};
use crate::observe::{CallOutcome, ListenHistory};

pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

const STYLE: &str = "body{font-family:system-ui,sans-serif;font-size:1.1rem;line-height:1.5;\
max-width:40rem;margin:0 auto;padding:1rem;color:#222;background:#fff}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:1.5rem;border-bottom:1px solid #ccc}\
.ok{color:#1a6b1a}.bad{color:#a31515;font-weight:bold}.menu p{margin:.3rem 0}\
.menu{background:#f4f4f4;padding:.5rem 1rem;border-radius:.3rem}\
svg{width:100%;height:auto}svg text{font-size:13px;fill:#222}small{color:#555}";

pub fn render(line: &LineSnapshot) -> String {
    let mut page = String::with_capacity(8192);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    page.push_str("<title>Dial-a-service: status</title>");
    let _ = write!(page, "<style>{STYLE}</style></head><body>");
    page.push_str("<h1>Dial-a-service</h1>");
    let _ = write!(page, "<p id=\"summary\">{}</p>", summary(line));

    page.push_str("<h2>Registration</h2>");
    let _ = write!(page, "<p id=\"registration\">{}</p>", registration(line));

    page.push_str("<h2>What callers hear now</h2>");
    match &line.offer {
        Ok(offer) => {
            page.push_str("<div class=\"menu\" id=\"menu\">");
            for sentence in offer.menu_text.lines() {
                let _ = write!(page, "<p>{}</p>", esc(sentence));
            }
            page.push_str("</div>");
        }
        Err(problem) => {
            let _ = write!(
                page,
                "<p id=\"menu\" class=\"bad\">Callers hear the apology recording: {}.</p>",
                esc(problem.trim_end_matches('.'))
            );
        }
    }

    page.push_str("<h2>The line's own test call</h2>");
    let _ = write!(page, "<p id=\"self-test\">{}</p>", self_test(line));

    page.push_str("<h2>Services and the cache</h2>");
    source(&mut page, line);

    page.push_str("<h2>Calls</h2>");
    let _ = write!(page, "<p id=\"calls\">{}</p>", calls(line));

    page.push_str("<h2>Listens per service</h2>");
    chart(&mut page, &line.history);

    let _ = writeln!(
        page,
        "<p><small>As of {} ({}). Also: <a href=\"/healthz\">/healthz</a>, \
         <a href=\"/metrics\">/metrics</a>.</small></p></body></html>",
        line.now
            .with_timezone(&line.timezone)
            .format("%A %-d %B %Y, %H:%M"),
        esc(line.timezone.name())
    );
    page
}

fn summary(line: &LineSnapshot) -> String {
    let registered = line.trunk.as_ref().is_none_or(|t| t.state.is_up());
    let self_test_failed = line
        .self_test
        .as_ref()
        .and_then(|t| t.last.as_ref())
        .is_some_and(|v| !v.ok());
    match (&line.offer, registered) {
        (Ok(_), true) if self_test_failed => {
            "<span class=\"bad\">Callers may not hear the services: the line's own test call failed.</span>"
                .to_owned()
        }
        (Ok(_), true) => "<span class=\"ok\">All is well: callers hear the services.</span>".to_owned(),
        (Ok(_), false) => {
            "<span class=\"bad\">Callers cannot get through: the line is not registered with its provider.</span>"
                .to_owned()
        }
        (Err(_), _) => {
            "<span class=\"bad\">Callers hear an apology instead of a service.</span>".to_owned()
        }
    }
}

fn self_test(line: &LineSnapshot) -> String {
    let Some(test) = &line.self_test else {
        return "The line does not call itself to check it ([self_test] interval = 0).".to_owned();
    };
    let every = humantime::format_duration(test.interval);
    match &test.last {
        None => format!(
            "The line calls itself to check what callers hear a few seconds after it starts, \
             then every {every}."
        ),
        Some(verdict) if test.is_overdue(line.now) => format!(
            "<span class=\"bad\">The line has stopped calling itself</span>: the last time was {} ({}), \
             though it should every {every}. Restarting the line starts it again.",
            when(verdict.at, line.now, line.timezone),
            ago(verdict.at, line.now),
        ),
        Some(verdict) => {
            let (class, word) = if verdict.ok() {
                ("ok", "Passed")
            } else {
                ("bad", "Failed")
            };
            format!(
                "<span class=\"{class}\">{word}</span> {} ({}): {}. The line calls itself every {every}.",
                when(verdict.at, line.now, line.timezone),
                ago(verdict.at, line.now),
                esc(verdict.detail().trim_end_matches('.'))
            )
        }
    }
}

fn registration(line: &LineSnapshot) -> String {
    let Some(TrunkView { registrar, state }) = &line.trunk else {
        return "No phone provider (trunk) is set up: callers dial this line's own address."
            .to_owned();
    };
    let host = esc(registrar
        .trim_start_matches("sips:")
        .trim_start_matches("sip:"));
    let tz = line.timezone;
    match state {
        TrunkState::Resolving => format!("Looking up the address of {host}."),
        TrunkState::Registering { since } => {
            format!(
                "Registering with {host} (since {}).",
                when(*since, line.now, tz)
            )
        }
        TrunkState::Registered { refreshed, .. } => format!(
            "<span class=\"ok\">Registered with {host}</span>, refreshed {}.",
            ago(*refreshed, line.now)
        ),
        TrunkState::Failing {
            since,
            reason,
            retry_at,
            ..
        } => format!(
            "<span class=\"bad\">Not registered with {host}</span> since {}: {}. \
             Trying again {}.",
            when(*since, line.now, tz),
            esc(reason),
            when(*retry_at, line.now, tz)
        ),
        TrunkState::Unregistering => format!("Unregistering from {host} (shutting down)."),
        TrunkState::Unregistered => format!("Not registered with {host}."),
    }
}

fn source(page: &mut String, line: &LineSnapshot) {
    let tz = line.timezone;
    match &line.source {
        SourceView::LocalFile { schedule } => {
            let _ = write!(
                page,
                "<p id=\"source\">The schedule is read from the file {} on this computer for every call.</p>",
                esc(schedule)
            );
        }
        SourceView::Fetched {
            origin,
            last_success,
            services,
            problems,
            ..
        } => {
            let fetched = match last_success {
                Some(at) => format!(
                    "Last good copy fetched {} ({}), with {services} service(s).",
                    when(*at, line.now, tz),
                    ago(*at, line.now)
                ),
                None => "No good copy has been fetched yet.".to_owned(),
            };
            let _ = write!(
                page,
                "<p id=\"source\">The schedule comes from {}. {fetched}</p>",
                esc(origin)
            );
            for problem in problems {
                let _ = write!(
                    page,
                    "<p class=\"bad problem\">{}</p>",
                    problem_sentence(problem, *last_success, line.now, tz)
                );
            }
            if problems.is_empty() {
                page.push_str("<p class=\"ok\">No problems with the website or the cache.</p>");
            }
        }
    }
}

/// "The website could not be used at 09:12 (the certificate … expired);
/// callers hear the copy fetched on Sunday at 18:00."
fn problem_sentence(
    problem: &SourceProblem,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: Tz,
) -> String {
    // The refresher's subjects: `schedule <url>`, `audio <url>`, `disk cache`.
    let schedule = problem.subject.split(' ').next() == Some("schedule");
    let what = if schedule {
        "The website's schedule could not be fetched".to_owned()
    } else if let Some(url) = problem.subject.strip_prefix("audio ") {
        format!("The recording {} could not be downloaded", esc(url))
    } else {
        format!("The {} failed", esc(&problem.subject))
    };
    let consequence = match (schedule, last_success) {
        (true, Some(at)) => {
            format!("callers hear the copy fetched {}", when(at, now, tz))
        }
        (true, None) => "callers hear the apology until it can be".to_owned(),
        (false, _) => "callers hear the services that were downloaded".to_owned(),
    };
    format!(
        "{what} {} ({}); {consequence}.",
        when(problem.since, now, tz),
        esc(problem.reason.trim_end_matches('.'))
    )
}

fn calls(line: &LineSnapshot) -> String {
    let active = match line.calls_active {
        0 => "No calls in progress.".to_owned(),
        1 => "1 call in progress.".to_owned(),
        n => format!("{n} calls in progress."),
    };
    let ended: Vec<String> = line
        .calls_ended
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(outcome, n)| format!("{n} {}", outcome_words(*outcome)))
        .collect();
    if ended.is_empty() {
        format!("{active} No calls have ended since the line started.")
    } else {
        format!("{active} Since the line started: {}.", ended.join(", "))
    }
}

fn outcome_words(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Completed => "heard a service to the end",
        CallOutcome::CallerHungUp => "hung up",
        CallOutcome::Cancelled => "gave up before the answer",
        CallOutcome::TimedOut => "reached a time limit",
        CallOutcome::Failed => "failed",
        CallOutcome::Shutdown => "cut off by a restart",
    }
}

/// One SVG per week: a bar per service, its title and count beside it.
fn chart(page: &mut String, history: &ListenHistory) {
    let max = history
        .weeks
        .iter()
        .flat_map(|(_, services)| services.iter().map(|(_, n)| *n))
        .max()
        .unwrap_or(0);
    if max == 0 {
        page.push_str("<p id=\"listens\">No services have been played yet.</p>");
        return;
    }
    page.push_str("<div id=\"listens\">");
    for (week, services) in history.weeks.iter().rev() {
        let total: u32 = services.iter().map(|(_, n)| n).sum();
        let _ = write!(
            page,
            "<p>Week of {}: {total} listen{}</p>",
            week.format("%A %-d %B"),
            if total == 1 { "" } else { "s" }
        );
        if services.is_empty() {
            continue;
        }
        let row = 22;
        let height = row * services.len();
        let _ = write!(
            page,
            "<svg viewBox=\"0 0 360 {height}\" role=\"img\" aria-label=\"listens in the week of {}\">",
            week.format("%-d %B")
        );
        for (i, (service, n)) in services.iter().enumerate() {
            let y = i * row;
            let width = (f64::from(*n) / f64::from(max) * 150.0).max(2.0);
            let title: String = service.chars().take(28).collect();
            let _ = write!(
                page,
                "<text x=\"0\" y=\"{}\">{}</text>\
                 <rect x=\"190\" y=\"{}\" width=\"{width:.1}\" height=\"16\" fill=\"#3a6ea5\"><title>{}</title></rect>\
                 <text x=\"{:.1}\" y=\"{}\">{n}</text>",
                y + 15,
                esc(&title),
                y + 3,
                esc(service),
                194.0 + width,
                y + 15
            );
        }
        page.push_str("</svg>");
    }
    page.push_str("</div>");
}

/// "just now", "3 minutes ago", "5 hours ago", "2 days ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match seconds {
        ..60 => "just now".to_owned(),
        60..3600 => plural(seconds / 60, "minute"),
        3600..86_400 => plural(seconds / 3600, "hour"),
        _ => plural(seconds / 86_400, "day"),
    }
}

/// "at 09:12" today, "yesterday at 18:00", "on Sunday at 18:00" this
/// week, else "on 30 November at 18:00", all in the line's time zone.
pub fn when(at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    let today = now.with_timezone(&tz).date_naive();
    let day = local.date_naive();
    let time = local.format("%H:%M");
    let days = (today - day).num_days();
    match days {
        0 => format!("at {time}"),
        1 => format!("yesterday at {time}"),
        -1 => format!("tomorrow at {time}"),
        2..=6 => format!("on {} at {time}", local.format("%A")),
        _ => format!("on {} at {time}", local.format("%-d %B %Y")),
    }
}

/// Text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::tests::sample;

    #[test]
    fn hostile_titles_are_escaped_everywhere() {
        let page = render(&sample());
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("Evensong &lt;b&gt;&quot;live&quot;&lt;/b&gt;"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn says_in_words_what_is_wrong_and_what_callers_hear() {
        let page = render(&sample());
        assert!(page.contains("name=\"viewport\""));
        assert!(page.contains("Registered with sip.example.net</span>, refreshed 3 minutes ago."));
        assert!(
            page.contains(
                "The website's schedule could not be fetched at 17:30 \
             (the certificate of stmarys.example has expired); \
             callers hear the copy fetched on Sunday at 18:00."
            ),
            "{page}"
        );
        assert!(page.contains(
            "2 calls in progress. Since the line started: 3 heard a service to the end, 1 hung up."
        ));
        assert!(page.contains("Press 1 for the service from Evensong"));
        assert!(page.contains("Week of Monday 1 December: 5 listens"));
        assert!(page.contains("<svg"));
    }

    #[test]
    fn the_self_test_says_what_it_heard_or_what_was_wrong() {
        let page = render(&sample());
        assert!(
            page.contains(
                "<span class=\"ok\">Passed</span> at 17:56 (4 minutes ago): heard the greeting \
                 (match 0.99) and Evensong &lt;b&gt;&quot;live&quot;&lt;/b&gt; (match 0.97). \
                 The line calls itself every 15m."
            ),
            "{page}"
        );
        let page = render(&crate::admin::snapshot::tests::self_test_failed());
        assert!(page.contains("the line's own test call failed"), "{page}");
        assert!(
            page.contains("<span class=\"bad\">Failed</span> at 17:56"),
            "{page}"
        );
        assert!(
            page.contains("was not heard after the greeting (best match 0.08"),
            "{page}"
        );
        let mut line = sample();
        line.now += chrono::Duration::hours(1);
        assert!(render(&line).contains("The line has stopped calling itself</span>"));
        line.self_test = None;
        assert!(render(&line).contains("does not call itself"));
    }

    #[test]
    fn apology_and_lost_registration_are_plain_too() {
        let mut line = sample();
        line.offer = Err("no schedule has been fetched and checked yet".to_owned());
        line.trunk = None;
        line.history = ListenHistory::default();
        let page = render(&line);
        assert!(page.contains(
            "Callers hear the apology recording: no schedule has been fetched and checked yet."
        ));
        assert!(page.contains("No phone provider (trunk) is set up"));
        assert!(page.contains("No services have been played yet."));
    }

    #[test]
    fn times_read_naturally() {
        let now = DateTime::parse_from_rfc3339("2025-12-05T18:00:00Z")
            .unwrap()
            .to_utc();
        let tz = chrono_tz::Europe::London;
        let minutes = |m: i64| now - chrono::Duration::minutes(m);
        assert_eq!(ago(minutes(0), now), "just now");
        assert_eq!(ago(minutes(1), now), "1 minute ago");
        assert_eq!(ago(minutes(180), now), "3 hours ago");
        assert_eq!(when(minutes(30), now, tz), "at 17:30");
        assert_eq!(when(minutes(60 * 24), now, tz), "yesterday at 18:00");
        assert_eq!(when(minutes(60 * 24 * 5), now, tz), "on Sunday at 18:00");
        assert_eq!(
            when(minutes(60 * 24 * 30), now, tz),
            "on 5 November 2025 at 18:00"
        );
    }
}
