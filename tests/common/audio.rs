//! Test audio made with real tools (espeak-ng, sox, ffmpeg), and the
//! comparison of what a caller heard with what was played.

use std::path::{Path, PathBuf};
use std::process::Command;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test "service": British-English speech over a slow sweep, `seconds`
/// long, as a 44.1 kHz stereo WAV: every resampler and mixer is exercised,
/// and every half second differs from every other, so correlation finds a
/// single lag.
pub fn make_service_wav(dir: &Path, name: &str, text: &str, seconds: f32) -> PathBuf {
    let speech = dir.join(format!("{name}-speech.wav"));
    run(
        "espeak-ng",
        &[
            "-v",
            "en-gb",
            "-s",
            "150",
            "-w",
            speech.to_str().unwrap(),
            text,
        ],
    );
    let out = dir.join(format!("{name}.wav"));
    let secs = format!("{seconds}");
    // Speech padded to length, mixed with a quiet 200 Hz → 3 kHz sweep.
    run(
        "sox",
        &[
            "-m",
            "-v",
            "1.0",
            "|sox SPEECH -r 44100 -c 2 -p pad 0 SECS trim 0 SECS"
                .replace("SPEECH", speech.to_str().unwrap())
                .replace("SECS", &secs)
                .as_str(),
            "-v",
            "0.3",
            format!("|sox -n -r 44100 -c 2 -p synth {secs} sine 200:3000").as_str(),
            "-b",
            "16",
            out.to_str().unwrap(),
        ],
    );
    out
}

/// Converts with ffmpeg; the format follows the extension of `to`.
pub fn convert(from: &Path, to: &Path, extra: &[&str]) {
    let mut args = vec!["-y", "-loglevel", "error", "-i", from.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(to.to_str().unwrap());
    run("ffmpeg", &args);
}

/// Mono samples at `rate_hz`, resampled by sox (an independent resampler).
pub fn reference(path: &Path, rate_hz: u32) -> Vec<f32> {
    // Written to a temp dir: the source may be a file of the repository.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(format!("reference-{rate_hz}.wav"));
    run(
        "sox",
        &[
            path.to_str().unwrap(),
            "-r",
            &rate_hz.to_string(),
            "-c",
            "1",
            "-b",
            "16",
            out.to_str().unwrap(),
        ],
    );
    read_wav(&out).0
}

/// A WAV file as mono f32 samples and its rate.
pub fn read_wav(path: &Path) -> (Vec<f32>, u32) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    let channels = spec.channels as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.unwrap_or(0) as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => reader.samples::<f32>().map(|s| s.unwrap_or(0.0)).collect(),
    };
    let mono = samples
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    (mono, spec.sample_rate)
}

/// Cross-correlation of `heard` against `played` for every lag, by FFT:
/// returns (lag in samples of `heard` after `played`, raw dot product).
fn best_lag(heard: &[f32], played: &[f32], max_lag: usize) -> isize {
    let n = (heard.len() + played.len()).next_power_of_two();
    let mut planner = FftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(n);
    let ifft = planner.plan_fft_inverse(n);
    let mut a: Vec<Complex<f32>> = heard.iter().map(|&x| Complex::new(x, 0.0)).collect();
    a.resize(n, Complex::new(0.0, 0.0));
    let mut b: Vec<Complex<f32>> = played.iter().map(|&x| Complex::new(x, 0.0)).collect();
    b.resize(n, Complex::new(0.0, 0.0));
    fft.process(&mut a);
    fft.process(&mut b);
    let mut c: Vec<Complex<f32>> = a.iter().zip(&b).map(|(x, y)| x * y.conj()).collect();
    ifft.process(&mut c);
    // Zero-padded to at least both lengths, the circular correlation holds
    // every linear lag once: heard later by up to its length, earlier by up
    // to the played length.
    let later = max_lag.min(heard.len().saturating_sub(1)) as isize;
    let earlier = max_lag.min(played.len().saturating_sub(1)) as isize;
    let mut best = (0isize, f32::MIN);
    for signed in -earlier..=later {
        let index = signed.rem_euclid(n as isize) as usize;
        if c[index].re > best.1 {
            best = (signed, c[index].re);
        }
    }
    best.0
}

/// Normalised correlation of `heard[i + lag]` with `played[i]` over their overlap.
fn correlation_at(heard: &[f32], played: &[f32], lag: isize) -> f32 {
    let (mut dot, mut ea, mut eb) = (0f64, 0f64, 0f64);
    for (i, &p) in played.iter().enumerate() {
        let j = i as isize + lag;
        if j < 0 || j as usize >= heard.len() {
            continue;
        }
        let h = heard[j as usize];
        dot += f64::from(h) * f64::from(p);
        ea += f64::from(h) * f64::from(h);
        eb += f64::from(p) * f64::from(p);
    }
    if ea == 0.0 || eb == 0.0 {
        return 0.0;
    }
    (dot / (ea.sqrt() * eb.sqrt())) as f32
}

/// Where `played` starts in `heard` (in samples, negative if earlier),
/// searching lags up to `max_lag_s` either way.
pub fn lag_of(heard: &[f32], played: &[f32], rate_hz: u32, max_lag_s: f32) -> isize {
    best_lag(heard, played, (max_lag_s * rate_hz as f32) as usize)
}

/// Peak normalised cross-correlation of what was heard with what was
/// played, searching lags up to `max_lag_s` either way.
pub fn correlation(heard: &[f32], played: &[f32], rate_hz: u32, max_lag_s: f32) -> f32 {
    let lag = best_lag(heard, played, (max_lag_s * rate_hz as f32) as usize);
    correlation_at(heard, played, lag)
}

/// Median of per-window correlations (0.5 s windows of the played audio,
/// each free to shift ±40 ms around the global lag): robust to a jitter
/// buffer that drops or inserts a frame now and then (peers.md).
pub fn windowed_correlation(heard: &[f32], played: &[f32], rate_hz: u32, max_lag_s: f32) -> f32 {
    let global = best_lag(heard, played, (max_lag_s * rate_hz as f32) as usize);
    let window = rate_hz as usize / 2;
    let slack = (rate_hz as f32 * 0.04) as isize;
    let mut scores = Vec::new();
    for start in (0..played.len().saturating_sub(window)).step_by(window) {
        let segment = &played[start..start + window];
        let energy: f32 = segment.iter().map(|x| x * x).sum::<f32>() / window as f32;
        if energy < 1e-5 {
            continue; // silence says nothing about alignment
        }
        let best = (-slack..=slack)
            .step_by(2)
            .map(|d| {
                let lag = global + start as isize + d;
                let mut shifted = Vec::with_capacity(window);
                for i in 0..window as isize {
                    let j = lag + i;
                    shifted.push(if j >= 0 && (j as usize) < heard.len() {
                        heard[j as usize]
                    } else {
                        0.0
                    });
                }
                correlation_at(&shifted, segment, 0)
            })
            .fold(f32::MIN, f32::max);
        scores.push(best);
    }
    if scores.is_empty() {
        return 0.0;
    }
    scores.sort_by(|a, b| a.total_cmp(b));
    scores[scores.len() / 2]
}

/// RMS level of a slice.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt()
}
