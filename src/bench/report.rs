//! The figures of `bench --through-sip`, their sanity checks, and how they
//! are printed: one row of the README's performance table and the details
//! behind it, or JSON (`--json`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::bench::e2e::LineSample;
use crate::bench::rtp_report::RtpReport;
use crate::bench::setup::SetupReport;

/// Packets a call sends a second (20 ms ptime, every codec here).
const PACKETS_PER_SECOND: f64 = 50.0;

/// The line's CPU over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    pub seconds: f64,
    pub cpu_seconds: f64,
    /// CPU seconds per second: how many cores the line kept busy.
    pub cores: f64,
    /// Percent of one core per call (0 without calls).
    pub percent_of_a_core_per_call: f64,
    /// CPU per RTP packet sent, in µs (0 without calls).
    pub cpu_per_packet_us: f64,
}

impl Measured {
    pub fn between(start: &LineSample, end: &LineSample, calls: usize) -> Measured {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let cpu_seconds = end.cpu.saturating_sub(start.cpu).as_secs_f64();
        let cores = cpu_seconds / seconds;
        let (per_call, per_packet) = if calls == 0 {
            (0.0, 0.0)
        } else {
            let packets = calls as f64 * seconds * PACKETS_PER_SECOND;
            (100.0 * cores / calls as f64, 1e6 * cpu_seconds / packets)
        };
        Measured {
            seconds,
            cpu_seconds,
            cores,
            percent_of_a_core_per_call: per_call,
            cpu_per_packet_us: per_packet,
        }
    }
}

/// INVITE to 200 OK as sipp saw it, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SetupTimes {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl SetupTimes {
    pub fn from_sorted(times: &[Duration]) -> SetupTimes {
        let at = |q: f64| {
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len().max(1));
            times.get(rank - 1).map_or(0.0, |t| t.as_secs_f64() * 1e3)
        };
        SetupTimes {
            count: times.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: times.last().map_or(0.0, |t| t.as_secs_f64() * 1e3),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub calls: usize,
    pub codec: &'static str,
    /// New calls a second.
    pub rate: u32,
    /// One call in this many captured.
    pub sample: u16,
    /// Cores of the machine (the line, sipp and the capture share them).
    pub cores: usize,
    /// Calls holding an RTP pair in the line when the measurement began.
    pub calls_up: usize,
    /// And when it ended.
    pub calls_at_end: usize,
    pub sipp_exit: Option<i32>,
    pub sipp_successful: Option<u64>,
    pub sipp_failed: Option<u64>,
    pub setup: SetupTimes,
    /// The line listening with no call.
    pub idle: Measured,
    /// Every call up and playing.
    pub loaded: Measured,
    pub rss_idle_kib: u64,
    pub rss_loaded_kib: u64,
    pub rss_end_kib: u64,
    /// The line's RTP ports that the capture sampled.
    pub sampled_ports: Vec<u16>,
    /// Packets the kernel dropped before dumpcap saw them (`None`: not said).
    pub capture_drops: Option<u64>,
    pub rtp: RtpReport,
    /// The callers sent back what they heard (audio for key listening).
    pub echo: bool,
    /// The line listened for in-band key tones on every codec (`true`), on
    /// none (`false`), or by its default (G.711 only).
    pub inband: Option<bool>,
    /// The extra calls set up during the measurement, if asked for.
    pub setup_load: Option<SetupReport>,
    /// Why the run failed its sanity checks; empty when it passed.
    pub problems: Vec<String>,
    /// Where the config, logs and capture were kept (after a failure, or
    /// with --keep).
    pub work_dir: Option<PathBuf>,
}

impl E2eReport {
    /// Memory per call beyond the idle line, with every call up.
    pub fn rss_per_call_kib(&self) -> f64 {
        self.rss_loaded_kib.saturating_sub(self.rss_idle_kib) as f64 / self.calls_up.max(1) as f64
    }

    /// Every call set up and none failed; every sampled stream captured
    /// with packets.
    pub fn sanity(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.calls_up < self.calls {
            problems.push(format!(
                "only {} of {} calls were up when the measurement began",
                self.calls_up, self.calls
            ));
        }
        if self.calls_at_end < self.calls_up {
            problems.push(format!(
                "{} calls ended before the measurement did",
                self.calls_up - self.calls_at_end
            ));
        }
        match (self.sipp_successful, self.sipp_failed) {
            (Some(ok), Some(0)) if ok as usize == self.calls => {}
            (Some(ok), Some(failed)) => problems.push(format!(
                "sipp: {ok} calls succeeded and {failed} failed of {}",
                self.calls
            )),
            _ => problems.push("sipp wrote no statistics".to_owned()),
        }
        if self.sipp_exit != Some(0) {
            problems.push(format!("sipp exited with {:?}, not 0", self.sipp_exit));
        }
        if self.sampled_ports.is_empty() {
            problems.push("no call was sampled".to_owned());
        }
        let silent: Vec<u16> = self
            .sampled_ports
            .iter()
            .copied()
            .filter(|port| {
                !self
                    .rtp
                    .streams
                    .iter()
                    .any(|s| s.stream.src_port == *port && s.packets > 0)
            })
            .collect();
        if !silent.is_empty() {
            problems.push(format!(
                "{} sampled calls sent no RTP the capture saw (line ports {silent:?})",
                silent.len()
            ));
        }
        if let Some(setup) = &self.setup_load {
            problems.extend(setup.sanity());
        }
        problems
    }

    /// The row of the README's table: calls | line's CPU (cores) | % of a
    /// core per call | CPU per packet | RSS per call | send lateness p50 /
    /// p99 / max | gaps > 40 ms | failed calls.
    pub fn table_row(&self) -> String {
        format!(
            "| {calls} | {cores:.2} | {per_call:.3} % | {per_packet:.1} µs | {rss:.1} KiB | {p50:.2} / {p99:.2} / {max:.1} ms | {gaps} | {failed} |",
            calls = self.calls,
            cores = self.loaded.cores,
            per_call = self.loaded.percent_of_a_core_per_call,
            per_packet = self.loaded.cpu_per_packet_us,
            rss = self.rss_per_call_kib(),
            p50 = ms(self.rtp.lateness_p50),
            p99 = ms(self.rtp.lateness_p99),
            max = ms(self.rtp.lateness_max),
            gaps = self.rtp.gaps_over_40ms,
            failed = self.sipp_failed.map_or("?".to_owned(), |f| f.to_string()),
        )
    }

    pub fn summary(&self) -> String {
        let mut text = format!(
            "calls {calls} through SIP ({codec}, {rate} new a second, sipp and the capture on the same {cores} cores; \
             callers {talk}; in-band keys {inband})\n\
             | calls | line's CPU (cores) | % of a core per call | CPU per packet | RSS per call | send lateness p50 / p99 / max | gaps > 40 ms | failed calls |\n\
             |---|---|---|---|---|---|---|---|\n\
             {row}\n\
             line CPU      idle {idle:.3} cores; {loaded:.3} cores over {secs:.1} s with {up} calls up\n\
             line RSS      idle {rss_idle} KiB, all calls up {rss_loaded} KiB, at the end {rss_end} KiB\n\
             call setup    INVITE to 200: p50 {s50:.1} ms, p99 {s99:.1} ms, max {smax:.1} ms ({scount} calls); sipp: {ok} succeeded, {failed} failed\n\
             RTP sampled   1 call in {sample}: {streams} of {sampled} streams seen, {packets} packets, {lost} lost, {gaps} gaps > 40 ms, worst drift {drift:.0} ppm, capture drops {drops}",
            calls = self.calls,
            codec = self.codec,
            rate = self.rate,
            cores = self.cores,
            talk = if self.echo {
                "send back what they hear"
            } else {
                "send no audio"
            },
            inband = match self.inband {
                Some(true) => "on for every codec",
                Some(false) => "off",
                None => "as by default (G.711 calls)",
            },
            row = self.table_row(),
            idle = self.idle.cores,
            loaded = self.loaded.cores,
            secs = self.loaded.seconds,
            up = self.calls_up,
            rss_idle = self.rss_idle_kib,
            rss_loaded = self.rss_loaded_kib,
            rss_end = self.rss_end_kib,
            s50 = self.setup.p50_ms,
            s99 = self.setup.p99_ms,
            smax = self.setup.max_ms,
            scount = self.setup.count,
            ok = self
                .sipp_successful
                .map_or("?".to_owned(), |n| n.to_string()),
            failed = self.sipp_failed.map_or("?".to_owned(), |n| n.to_string()),
            sample = self.sample,
            streams = self.rtp.streams.len(),
            sampled = self.sampled_ports.len(),
            packets = self.rtp.packets,
            lost = self.rtp.lost,
            gaps = self.rtp.gaps_over_40ms,
            drift = self.rtp.worst_drift_ppm,
            drops = self
                .capture_drops
                .map_or("unknown".to_owned(), |n| n.to_string()),
        );
        if let Some(setup) = &self.setup_load {
            text.push('\n');
            text.push_str(&setup.summary());
        }
        for problem in &self.problems {
            text.push_str(&format!("\nFAILED: {problem}"));
        }
        if let Some(dir) = &self.work_dir {
            text.push_str(&format!(
                "\nthe config, the line's log, sipp's files and the capture are in {}",
                dir.display()
            ));
        }
        text
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn cpu_per_call_and_per_packet() {
        let t0 = Instant::now();
        let start = LineSample {
            at: t0,
            cpu: Duration::from_secs(1),
            rss_kib: 0,
        };
        let end = LineSample {
            at: t0 + Duration::from_secs(10),
            cpu: Duration::from_secs(3),
            rss_kib: 0,
        };
        let measured = Measured::between(&start, &end, 100);
        assert!((measured.cores - 0.2).abs() < 1e-9);
        assert!((measured.percent_of_a_core_per_call - 0.2).abs() < 1e-9);
        // 2 s of CPU over 100 calls × 10 s × 50 packets.
        assert!((measured.cpu_per_packet_us - 40.0).abs() < 1e-6);
        assert_eq!(Measured::between(&start, &end, 0).cpu_per_packet_us, 0.0);
    }

    #[test]
    fn setup_quantiles() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let setup = SetupTimes::from_sorted(&times);
        assert_eq!(setup.count, 100);
        assert!((setup.p50_ms - 50.0).abs() < 1e-9);
        assert!((setup.p99_ms - 99.0).abs() < 1e-9);
        assert!((setup.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(SetupTimes::from_sorted(&[]), SetupTimes::default());
    }
}
