use super::compressor::{self, MAX_BOOST_DB, MAX_CUT_DB};
use super::limiter::{self, CEILING, Limiter};
use super::*;

const RATE: u32 = 8000;

/// Deterministic noise, low-passed a little (more like speech than white
/// noise), amplitude-modulated at a syllable rate when `syllables`.
fn shaped_noise(seconds: f32, rate_hz: u32, syllables: bool, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    let mut smoothed = 0.0f32;
    (0..(seconds * rate_hz as f32) as usize)
        .map(|i| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let white = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            smoothed += (white - smoothed) * 0.5;
            let envelope = if syllables {
                let t = i as f32 / rate_hz as f32;
                0.55 + 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).sin()
            } else {
                1.0
            };
            smoothed * envelope
        })
        .collect()
}

fn loudness(samples: &[f32], rate_hz: u32) -> f64 {
    integrated_loudness(samples, rate_hz)
        .unwrap()
        .expect("audible")
        .0
}

/// `samples` scaled to exactly `lufs` by the same BS.1770 measurement.
fn at_loudness(mut samples: Vec<f32>, rate_hz: u32, lufs: f64) -> Vec<f32> {
    let gain = 10f64.powf((lufs - loudness(&samples, rate_hz)) / 20.0) as f32;
    samples.iter_mut().for_each(|s| *s *= gain);
    samples
}

fn settings(dynamics: Dynamics) -> LoudnessSettings {
    LoudnessSettings {
        target: DEFAULT_TARGET,
        dynamics,
    }
}

fn true_peak(samples: &[f32], rate_hz: u32) -> f64 {
    let mut meter = ebur128::EbuR128::new(1, rate_hz, ebur128::Mode::TRUE_PEAK).unwrap();
    meter.add_frames_f32(samples).unwrap();
    meter.true_peak(0).unwrap()
}

fn sample_peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, s| m.max(s.abs()))
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

#[test]
fn a_known_loudness_is_brought_to_the_target_by_one_gain() {
    for (source_lufs, rate_hz) in [(-35.0, RATE), (-10.0, RATE), (-35.0, 48_000)] {
        let source = at_loudness(shaped_noise(12.0, rate_hz, true, 7), rate_hz, source_lufs);
        let measured = integrated_loudness(&source, rate_hz).unwrap();
        let out =
            Leveller::level_clip(&source, rate_hz, settings(Dynamics::Off), measured).unwrap();
        assert_eq!(out.len(), source.len());
        let heard = loudness(&out, rate_hz);
        assert!(
            (heard - DEFAULT_TARGET.0).abs() < 0.5,
            "{source_lufs} LUFS at {rate_hz} Hz came out at {heard:.2} LUFS"
        );
        assert!(sample_peak(&out) <= CEILING, "{}", sample_peak(&out));
    }
}

#[test]
fn an_unknown_loudness_is_found_from_the_first_second_and_converges() {
    let source = at_loudness(shaped_noise(40.0, RATE, true, 11), RATE, -35.0);
    let out = Leveller::level_clip(&source, RATE, settings(Dynamics::Off), None).unwrap();
    let first_second = loudness(&out[..RATE as usize], RATE);
    assert!(
        (first_second - DEFAULT_TARGET.0).abs() < 2.0,
        "the first second played at {first_second:.2} LUFS"
    );
    let last_ten = loudness(&out[out.len() - 10 * RATE as usize..], RATE);
    assert!(
        (last_ten - DEFAULT_TARGET.0).abs() < 0.5,
        "converged to {last_ten:.2} LUFS"
    );
}

#[test]
fn the_adaptive_gain_moves_slowly_when_the_source_changes() {
    // A quiet opening, then a source 20 dB louder.
    let mut source = at_loudness(shaped_noise(10.0, RATE, true, 3), RATE, -40.0);
    source.extend(at_loudness(shaped_noise(10.0, RATE, true, 5), RATE, -20.0));
    let mut leveller = Leveller::new(RATE, settings(Dynamics::Off), None).unwrap();
    let frame = 160;
    let mut gains = Vec::new();
    for chunk in source.chunks(frame) {
        leveller.push(chunk);
        gains.push(leveller.gain.gain_db());
    }
    let per_frame = gain::SLEW_DB_PER_SECOND * frame as f32 / RATE as f32;
    // The gain starts where the seed measured (a jump before anything is
    // let out); from there on it only slews.
    let seeded = limiter::samples(gain::SEED, RATE).div_ceil(frame);
    assert!((gains[seeded] - 21.0).abs() < 1.0, "{}", gains[seeded]);
    for pair in gains[seeded..].windows(2) {
        assert!(
            (pair[1] - pair[0]).abs() <= per_frame + 1e-4,
            "{} → {}",
            pair[0],
            pair[1]
        );
    }
    // Following the louder source down, towards a gain of about 1 dB.
    let last = *gains.last().unwrap();
    assert!(last < 5.0, "the gain ended at {last} dB");
}

#[test]
fn the_limiter_never_exceeds_its_ceiling_between_samples_either() {
    // A tone at a quarter of the rate, sampled 45° off its crests: the
    // samples are 3 dB below the waveform's true peak.
    let tone: Vec<f32> = (0..RATE as usize)
        .map(|i| {
            let phase = std::f32::consts::FRAC_PI_2 * i as f32 + std::f32::consts::FRAC_PI_4;
            3.0 * phase.sin()
        })
        .collect();
    let mut bursts = shaped_noise(2.0, RATE, false, 9);
    bursts.iter_mut().for_each(|s| *s *= 8.0);
    for input in [tone, bursts] {
        assert!(true_peak(&input, RATE) > 2.0);
        let mut limiter = Limiter::new(RATE);
        let mut out: Vec<f32> = input.iter().map(|&s| limiter.push(s)).collect();
        out.extend((0..limiter.delay()).map(|_| limiter.push(0.0)));
        assert!(
            sample_peak(&out) <= CEILING,
            "sample peak {}",
            sample_peak(&out)
        );
        let tp = true_peak(&out, RATE);
        // The estimate is 4× oversampled like BS.1770's: within 0.3 dB.
        assert!(
            db(tp / f64::from(CEILING)) < 0.3,
            "true peak {:.2} dBTP",
            db(tp)
        );
        assert!(limiter.activity().samples_limited > 0);
    }
}

#[test]
fn the_limiter_leaves_audio_under_its_ceiling_untouched() {
    let input = at_loudness(shaped_noise(3.0, RATE, true, 13), RATE, -30.0);
    assert!(true_peak(&input, RATE) < f64::from(CEILING));
    let mut limiter = Limiter::new(RATE);
    let delay = limiter.delay();
    let mut out: Vec<f32> = input.iter().map(|&s| limiter.push(s)).collect();
    out.extend((0..delay).map(|_| limiter.push(0.0)));
    assert_eq!(&out[delay..], &input[..]);
    assert_eq!(limiter.activity().samples_limited, 0);
}

#[test]
fn the_output_is_aligned_with_the_input() {
    let mut input = vec![0.0f32; 4000];
    input[1234] = 0.5;
    let out =
        Leveller::level_clip(&input, RATE, settings(Dynamics::Off), Some(DEFAULT_TARGET)).unwrap();
    assert_eq!(out.len(), input.len());
    let loudest = out
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap();
    assert_eq!(loudest.0, 1234);
}

/// Steady-state loudness of the quiet and the loud halves of a source
/// (the last 5 s of each 15 s, after the compressor has settled).
fn quiet_and_loud(out: &[f32]) -> (f64, f64) {
    let half = out.len() / 2;
    let settle = 10 * RATE as usize;
    (
        loudness(&out[settle..half], RATE),
        loudness(&out[half + settle..], RATE),
    )
}

/// A quiet reader 16 dB below the target, then an organ 6 dB above it.
fn reader_then_organ() -> Vec<f32> {
    let target = DEFAULT_TARGET.0;
    let mut source = at_loudness(shaped_noise(15.0, RATE, false, 17), RATE, target - 16.0);
    source.extend(at_loudness(
        shaped_noise(15.0, RATE, false, 19),
        RATE,
        target + 6.0,
    ));
    source
}

#[test]
fn gentle_dynamics_bring_quiet_and_loud_passages_closer_by_a_bounded_amount() {
    let source = reader_then_organ();
    let (quiet_in, loud_in) = quiet_and_loud(&source);
    let known = Some(DEFAULT_TARGET); // no loudness gain: the compressor alone
    let out = Leveller::level_clip(&source, RATE, settings(Dynamics::Gentle), known).unwrap();
    let (quiet_out, loud_out) = quiet_and_loud(&out);
    let closer = (loud_in - quiet_in) - (loud_out - quiet_out);
    assert!(
        closer >= 3.0 && closer <= f64::from(MAX_BOOST_DB + MAX_CUT_DB),
        "the gap shrank by {closer:.2} dB ({quiet_out:.1} vs {loud_out:.1})"
    );
    assert!(quiet_out > quiet_in + 1.0, "the reader is raised");
    assert!(loud_out < loud_in - 1.0, "the organ is lowered");
    assert!(loud_out > quiet_out + 6.0, "loud stays louder than quiet");
}

#[test]
fn dynamics_off_leaves_the_gap_alone() {
    let source = reader_then_organ();
    let (quiet_in, loud_in) = quiet_and_loud(&source);
    // Turned down 6 dB, clear of the limiter: only the gain acts.
    let out =
        Leveller::level_clip(&source, RATE, settings(Dynamics::Off), Some(Lufs(-13.0))).unwrap();
    let (quiet_out, loud_out) = quiet_and_loud(&out);
    assert!(
        ((loud_out - quiet_out) - (loud_in - quiet_in)).abs() < 0.1,
        "gap {:.2} became {:.2}",
        loud_in - quiet_in,
        loud_out - quiet_out
    );
    assert!(
        (quiet_in - quiet_out - 6.0).abs() < 0.1,
        "{quiet_in} → {quiet_out}"
    );
}

#[test]
fn the_compressor_curve_keeps_order_and_leaves_the_target_and_silence_alone() {
    assert_eq!(compressor::gain_db(0.0), 0.0);
    assert_eq!(compressor::gain_db(-60.0), 0.0);
    let mut previous = f32::NEG_INFINITY;
    for tenth in -600..=300 {
        let level = tenth as f32 / 10.0;
        let gain = compressor::gain_db(level);
        assert!(
            (-MAX_CUT_DB..=MAX_BOOST_DB).contains(&gain),
            "{level}: {gain}"
        );
        // Louder in stays louder out (never inverts the dynamics).
        assert!(level + gain >= previous - 1e-4, "{level}: {gain}");
        previous = level + gain;
    }
}

#[test]
fn silence_stays_silent() {
    let out = Leveller::level_clip(&[0.0; 16_000], RATE, settings(Dynamics::Gentle), None).unwrap();
    assert!(out.iter().all(|&s| s == 0.0));
}
