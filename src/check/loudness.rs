//! What the line does to a file's level, in words: its measured loudness
//! (ITU-R BS.1770 integrated, at the codec's rate), the gain that brings
//! it to `[audio] loudness_target`, and whether the compressor and the
//! true-peak limiter act. Found by decoding the file through the same
//! track code calls use: once to measure, once more as a caller would hear
//! it once measured (a static gain).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::media::Codec;
use crate::media::decode::DecodeError;
use crate::media::level::{LevelReport, LoudnessSettings, Lufs};
use crate::media::track::{Track, TrackCache, TrackStatus};

/// How often decoding is looked at while waiting for it to end.
const POLL: Duration = Duration::from_millis(20);

/// The level report of `path` as callers on `codec` get it.
pub fn level_of(
    tracks: &TrackCache,
    path: &Path,
    codec: Codec,
) -> Result<LevelReport, Arc<DecodeError>> {
    let mut report = decoded(tracks.open(path, codec).map_err(Arc::new)?)?;
    if report.adaptive && report.measured.is_some() {
        // Measured now: opened again, it plays at the static gain.
        report = decoded(tracks.open(path, codec).map_err(Arc::new)?)?;
    }
    Ok(report)
}

/// Waits for `track` to be decoded to the end.
fn decoded(track: Arc<Track>) -> Result<LevelReport, Arc<DecodeError>> {
    loop {
        match track.status() {
            TrackStatus::Decoding { .. } => std::thread::sleep(POLL),
            TrackStatus::Complete { .. } => break,
            TrackStatus::Failed { error, .. } => return Err(error),
        }
    }
    Ok(track
        .level()
        .expect("invariant: a complete track from a file has its level report"))
}

/// One line: "−27.3 LUFS, raised 8.3 dB to −19.0 LUFS; the limiter …".
pub fn describe(report: &LevelReport, settings: LoudnessSettings) -> String {
    let Some(measured) = report.measured else {
        return "silent (nothing above the −70 LUFS gate): played as it is".to_owned();
    };
    let gain = report.gain_db;
    let mut words = if gain.abs() < 0.05 {
        format!("{measured}, already at the {} target", settings.target)
    } else {
        format!(
            "{measured}, {} {:.1} dB to {}",
            if gain > 0.0 { "raised" } else { "lowered" },
            gain.abs(),
            after_gain(measured, gain)
        )
    };
    let limiter = report.limiter;
    if limiter.samples_limited == 0 {
        words.push_str("; the limiter never acts");
    } else {
        let share = 100.0 * limiter.samples_limited as f64 / limiter.samples_total.max(1) as f64;
        words.push_str(&format!(
            "; the limiter turns down {share:.1}% of it (peaks, by up to {:.1} dB)",
            -limiter.deepest_db
        ));
    }
    match report.compressor {
        None => words.push_str("; compression off"),
        Some(c) => {
            let mut acts = Vec::new();
            if c.most_raised_db >= 0.5 {
                acts.push(format!(
                    "raises quiet passages by up to {:.1} dB",
                    c.most_raised_db
                ));
            }
            if c.most_lowered_db >= 0.5 {
                acts.push(format!(
                    "lowers loud ones by up to {:.1} dB",
                    c.most_lowered_db
                ));
            }
            if acts.is_empty() {
                words.push_str("; gentle compression hardly acts (its level is even)");
            } else {
                words.push_str(&format!("; gentle compression {}", acts.join(" and ")));
            }
        }
    }
    words
}

fn after_gain(measured: Lufs, gain_db: f32) -> Lufs {
    Lufs(measured.0 + f64::from(gain_db))
}
