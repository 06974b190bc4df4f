//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4),
//! written by hand: a dozen families do not need a metrics registry, and
//! the values already live in [`LineSnapshot`].
//!
//! Every name starts `das_`. Label values are escaped as the format asks
//! (`\\`, `\"`, `\n`); service titles come from the website and may hold
//! anything.

use std::fmt::Write;
use std::time::Duration;

use super::snapshot::{LineSnapshot, SourceView};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the send-lateness histogram: around the 20 ms frame,
/// where lateness starts to be heard as jitter.
const LATENESS_BOUNDS: [Duration; 10] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
];

pub fn render(line: &LineSnapshot) -> String {
    let mut out = Metrics(String::with_capacity(4096));
    out.family(
        "das_calls_active",
        "gauge",
        "Calls ringing, answered or being hung up.",
    );
    out.sample("das_calls_active", &[], line.calls_active as f64);

    out.family(
        "das_calls_total",
        "counter",
        "Calls ended since the line started, by outcome.",
    );
    for (outcome, n) in &line.calls_ended {
        out.sample(
            "das_calls_total",
            &[("outcome", outcome.label())],
            *n as f64,
        );
    }

    out.family(
        "das_trunk_configured",
        "gauge",
        "1 when a [trunk] is configured, so das_registration_up matters.",
    );
    out.sample("das_trunk_configured", &[], flag(line.trunk.is_some()));
    out.family(
        "das_registration_up",
        "gauge",
        "1 while registered with the trunk; 0 when not, or when no trunk is configured.",
    );
    let up = line.trunk.as_ref().is_some_and(|t| t.state.is_up());
    out.sample("das_registration_up", &[], flag(up));

    out.family(
        "das_schedule_playable",
        "gauge",
        "1 when a caller would hear a service now; 0: the apology.",
    );
    out.sample("das_schedule_playable", &[], flag(line.offer.is_ok()));

    if let Some(test) = &line.self_test {
        let last = test.last.as_ref();
        out.family(
            "das_self_test_ok",
            "gauge",
            "1 when the line's last call to itself heard the greeting and the newest service; 0 when not. \
             Absent until the first has run.",
        );
        if let Some(verdict) = last {
            out.sample("das_self_test_ok", &[], flag(verdict.ok()));
        }
        out.family(
            "das_self_test_last_run_timestamp_seconds",
            "gauge",
            "When the line last called itself.",
        );
        if let Some(verdict) = last {
            out.sample(
                "das_self_test_last_run_timestamp_seconds",
                &[],
                verdict.at.timestamp_millis() as f64 / 1000.0,
            );
        }
    }

    out.family(
        "das_source_last_success_timestamp_seconds",
        "gauge",
        "When the schedule was last fetched and checked (a local file: read now).",
    );
    let last_success = match &line.source {
        SourceView::LocalFile { .. } => line.offer.is_ok().then_some(line.now),
        SourceView::Fetched { last_success, .. } => *last_success,
    };
    if let Some(at) = last_success {
        out.sample(
            "das_source_last_success_timestamp_seconds",
            &[],
            at.timestamp_millis() as f64 / 1000.0,
        );
    }
    out.family(
        "das_source_failures_total",
        "counter",
        "Failed fetches, downloads and checks of the schedule and audio, by stable code.",
    );
    if let SourceView::Fetched { failures, .. } = &line.source {
        for (code, n) in failures {
            out.sample("das_source_failures_total", &[("reason", code)], *n as f64);
        }
    }

    out.family(
        "das_service_plays_total",
        "counter",
        "Times a service started playing to a caller, by service title.",
    );
    for (service, n) in &line.plays {
        out.sample(
            "das_service_plays_total",
            &[("service", service)],
            *n as f64,
        );
    }

    let engine = &line.engine;
    for (name, help, value) in [
        (
            "das_rtp_packets_sent_total",
            "RTP packets sent to callers.",
            engine.packets_sent,
        ),
        (
            "das_rtp_send_errors_total",
            "RTP packets the socket refused.",
            engine.send_errors,
        ),
        (
            "das_rtp_underruns_total",
            "20 ms slots with no audio decoded in time, sent as silence.",
            engine.underruns,
        ),
        (
            "das_rtp_strangers_total",
            "RTP packets dropped because they came from someone not the caller.",
            engine.strangers,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[], value as f64);
    }

    let name = "das_rtp_send_lateness_seconds";
    out.family(
        name,
        "histogram",
        "How long after its due instant each RTP packet was sent.",
    );
    let lateness = &engine.lateness;
    for bound in LATENESS_BOUNDS {
        let le = seconds(bound);
        out.sample(
            &format!("{name}_bucket"),
            &[("le", &le)],
            lateness.count_at_most(bound) as f64,
        );
    }
    let count = lateness.count() as f64;
    out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], count);
    out.sample(&format!("{name}_sum"), &[], lateness.sum().as_secs_f64());
    out.sample(&format!("{name}_count"), &[], count);
    out.0
}

struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// A bound in seconds as the `le` label: `0.0001`, `0.02`, never `1e-4`.
fn seconds(bound: Duration) -> String {
    let text = format!("{:.6}", bound.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Label values: backslash, double quote and line feed are escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::tests::sample;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            escape_label("Vespers \"live\"\nC:\\x"),
            "Vespers \\\"live\\\"\\nC:\\\\x"
        );
    }

    #[test]
    fn bounds_are_plain_decimals() {
        assert_eq!(seconds(Duration::from_micros(100)), "0.0001");
        assert_eq!(seconds(Duration::from_millis(20)), "0.02");
        assert_eq!(seconds(Duration::from_secs(1)), "1");
    }

    #[test]
    fn every_family_has_help_type_and_samples_named_after_it() {
        let text = render(&sample());
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_owned();
                assert!(family.starts_with("das_"), "{family}");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            assert!(line.starts_with(&family), "{line} after family {family}");
            let value = line.rsplit(' ').next().unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        }
        for name in [
            "das_calls_active 2",
            "das_calls_total{outcome=\"completed\"} 3",
            "das_registration_up 1",
            "das_source_failures_total{reason=\"source.certificate\"} 4",
            "das_service_plays_total{service=\"Evensong <b>\\\"live\\\"</b>\"} 5",
            "das_rtp_packets_sent_total 0",
            "das_rtp_send_lateness_seconds_bucket{le=\"+Inf\"} 0",
            "das_source_last_success_timestamp_seconds 1764525600",
            "das_self_test_ok 1",
            "das_self_test_last_run_timestamp_seconds 1764957360",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn the_self_test_is_1_or_0_and_absent_until_run_or_when_off() {
        let failed = render(&crate::admin::snapshot::tests::self_test_failed());
        assert!(failed.contains("\ndas_self_test_ok 0\n"), "{failed}");
        let mut line = sample();
        line.self_test.as_mut().unwrap().last = None;
        let text = render(&line);
        assert!(text.contains("# TYPE das_self_test_ok gauge"));
        assert!(!text.contains("\ndas_self_test_ok "), "{text}");
        line.self_test = None;
        assert!(!render(&line).contains("das_self_test"));
    }
}
