use std::sync::OnceLock;

use super::*;
use crate::call::menu::Spoken;
use crate::media::track::TrackStatus;
use crate::speech::tests::{espeak_available, wait_rendered};
use crate::speech::{Rendering, SpeechConfig};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/prompts")
}

/// The committed library, decoded once for all tests.
fn shipped() -> &'static Prompts {
    static SHIPPED: OnceLock<Prompts> = OnceLock::new();
    SHIPPED.get_or_init(|| Prompts::load(&shipped_dir(), &[Codec::Pcmu, Codec::Opus], None))
}

fn title(text: &str, audio: Option<&str>) -> Phrase {
    Phrase::Title(Spoken {
        text: text.into(),
        audio: audio.map(Into::into),
    })
}

/// "Press 1 for the service from <title>, Sunday the 1st of May."
fn menu_line(title: Phrase) -> Vec<Phrase> {
    vec![
        Phrase::Press,
        Phrase::Digit(1),
        Phrase::ForTheServiceFrom,
        title,
        Phrase::Weekday(chrono::Weekday::Sun),
        Phrase::The,
        Phrase::Ordinal(1),
        Phrase::Of,
        Phrase::Month(5),
    ]
}

/// A 440 Hz tone with silence around it, as a parish's recording might be.
fn write_recording(path: &Path, seconds: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let silence = 4_000;
    let tone = (16_000.0 * seconds) as usize;
    for i in 0..silence * 2 + tone {
        let s = if (silence..silence + tone).contains(&i) {
            (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 8_000.0
        } else {
            0.0
        };
        writer.write_sample(s as i16).unwrap();
    }
    writer.finalize().unwrap();
}

#[test]
fn every_prompt_is_committed_and_decodes() {
    let prompts = shipped();
    assert!(prompts.missing().is_empty(), "{:?}", prompts.missing());
    for phrase in Phrase::library() {
        let name = phrase.prompt_name().unwrap();
        for rate in [8_000, 48_000] {
            let pcm = &prompts.library[&name][&rate];
            let seconds = pcm.len() as f64 / f64::from(rate);
            assert!((0.1..5.0).contains(&seconds), "{name}: {seconds} s");
            assert_eq!(pcm[0], 0.0, "{name} starts at zero");
            assert_eq!(pcm[pcm.len() - 1], 0.0, "{name} ends at zero");
        }
    }
}

#[test]
fn joins_do_not_click_and_pauses_are_even() {
    let prompts = shipped();
    let sentence = menu_line(title("Choral Evensong", None));
    let rate = 8_000;
    let parts = prompts.resolve(&sentence, rate, Path::new("/nonexistent"));
    assert_eq!(parts.len(), 8, "the title, without speech, is left out");
    let (samples, ranges) = join(&parts, rate);
    let word = clip::samples_in(WORD_GAP, rate);
    let comma = clip::samples_in(COMMA_GAP, rate);
    for pair in ranges.windows(2) {
        let gap = pair[1].start - pair[0].end;
        // Without the title, no comma before the date: every gap is a word gap.
        assert_eq!(gap, word);
        assert!(
            samples[pair[0].end..pair[1].start]
                .iter()
                .all(|&s| s == 0.0)
        );
    }
    assert_eq!(
        samples.len() - ranges.last().unwrap().end,
        clip::samples_in(SENTENCE_GAP, rate)
    );
    // Into and out of every part: no step larger than speech itself makes
    // within the first and last 2 ms (a click is a jump to full scale).
    let edge = clip::samples_in(Duration::from_millis(2), rate);
    for range in &ranges {
        for window in [
            range.start.saturating_sub(1)..range.start + edge,
            range.end - edge..(range.end + 1).min(samples.len()),
        ] {
            let steps = samples[window.clone()].windows(2);
            let max_step = steps.map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
            assert!(max_step < 0.05, "step {max_step} at {window:?}");
        }
    }
    // A month ends the sentence here; before a key it would get a comma.
    let untitled = prompts.resolve(
        &[
            Phrase::For,
            Phrase::Month(5),
            Phrase::PressAfter,
            Phrase::Digit(3),
        ],
        rate,
        Path::new("/nonexistent"),
    );
    let (_, ranges) = join(&untitled, rate);
    assert_eq!(ranges[2].start - ranges[1].end, comma);
    assert_eq!(ranges[3].start - ranges[2].end, word);
}

#[test]
fn tracks_are_encoded_once_per_sentence_and_codec() {
    let prompts = shipped();
    let sentences = vec![vec![Phrase::ThanksForCalling], vec![Phrase::NotAnOption]];
    let audio = Path::new("/nonexistent");
    let tracks = prompts.render(&sentences, Codec::Pcmu, audio);
    assert_eq!(tracks.len(), 2);
    assert!(matches!(tracks[0].status(), TrackStatus::Complete { frames } if frames > 20));
    let again = prompts.render(&sentences, Codec::Pcmu, audio);
    assert!(Arc::ptr_eq(&tracks[0], &again[0]), "a repeat costs nothing");
    let opus = prompts.render(&sentences, Codec::Opus, audio);
    assert_eq!(opus[1].codec(), Codec::Opus);
    // Nothing to say, nothing rendered.
    let empty = prompts.render(&[vec![title("Matins", None)]], Codec::Pcmu, audio);
    assert!(empty.is_empty());
}

#[test]
fn a_missing_or_broken_prompt_is_reported_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["press", "digit-1"] {
        std::fs::copy(
            shipped_dir().join(format!("{name}.opus")),
            dir.path().join(format!("{name}.opus")),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("for-the-service-from.wav"), b"not audio").unwrap();
    let prompts = Prompts::load(dir.path(), &[Codec::Pcma], None);
    let missing = prompts.missing();
    assert_eq!(missing.len(), Phrase::library().len() - 2);
    let broken = missing
        .iter()
        .find(|m| m.name == "for-the-service-from")
        .unwrap();
    assert!(
        broken.reason.contains("for-the-service-from.wav"),
        "{broken:?}"
    );
    let the = missing.iter().find(|m| m.name == "the").unwrap();
    assert!(the.reason.starts_with("no file named the.*"), "{the:?}");

    let sentence = menu_line(title("Matins", None));
    let parts = prompts.resolve(&sentence, 8_000, dir.path());
    let said: Vec<&Phrase> = parts.iter().map(|p| &p.phrase).collect();
    assert_eq!(said, [&Phrase::Press, &Phrase::Digit(1)]);
    // A rate `load` was not asked for is still served.
    let tracks = prompts.render(&[sentence], Codec::Opus, dir.path());
    assert_eq!(tracks.len(), 1);

    // No folder at all: everything missing, nothing panics.
    let none = Prompts::load(&dir.path().join("absent"), &[Codec::Pcmu], None);
    assert_eq!(none.missing().len(), Phrase::library().len());
    assert!(
        none.render(&[vec![Phrase::Goodbye]], Codec::Pcmu, dir.path())
            .is_empty()
    );
}

#[test]
fn a_parish_recording_replaces_one_prompt_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // Two files of one name: the first in alphabetical order wins.
    write_recording(&dir.path().join("goodbye.wav"), 1.0);
    write_recording(&dir.path().join("goodbye.x-old"), 0.5);
    let prompts = Prompts::load(dir.path(), &[Codec::Pcmu], None);
    let pcm = &prompts.library["goodbye"][&8_000];
    let seconds = pcm.len() as f64 / 8_000.0;
    // The tone, trimmed of its quarter second of silence each side.
    assert!((1.0..1.05).contains(&seconds), "{seconds} s");
    let peak = pcm.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!((peak - clip::PEAK).abs() < 0.01, "levelled to {peak}");
}

#[test]
fn a_title_with_a_recording_is_spoken_from_it() {
    let audio = tempfile::tempdir().unwrap();
    std::fs::create_dir(audio.path().join("titles")).unwrap();
    write_recording(&audio.path().join("titles/evensong.wav"), 0.8);
    let prompts = shipped();
    let sentence = menu_line(title("Choral Evensong", Some("titles/evensong.wav")));
    let parts = prompts.resolve(&sentence, 8_000, audio.path());
    assert_eq!(parts.len(), 9);
    let title_part = &parts[3];
    assert!(matches!(title_part.phrase, Phrase::Title(_)));
    let seconds = title_part.pcm.len() as f64 / 8_000.0;
    assert!((0.8..0.85).contains(&seconds), "{seconds} s");
    // The comma after the title is a longer pause.
    let (_, ranges) = join(&parts, 8_000);
    assert_eq!(
        ranges[4].start - ranges[3].end,
        clip::samples_in(COMMA_GAP, 8_000)
    );
    // A recording that is not there: left out (no speech here), no panic.
    let gone = menu_line(title("Choral Evensong", Some("titles/gone.wav")));
    assert_eq!(prompts.resolve(&gone, 8_000, audio.path()).len(), 8);
    // A recording that is not audio: logged once, left out.
    std::fs::write(audio.path().join("titles/bad.wav"), b"RIFF junk").unwrap();
    let bad = menu_line(title("Choral Evensong", Some("titles/bad.wav")));
    assert_eq!(prompts.resolve(&bad, 8_000, audio.path()).len(), 8);
    assert_eq!(prompts.resolve(&bad, 8_000, audio.path()).len(), 8);
}

#[test]
fn names_and_missing_prompts_are_spoken_once_synthesised() {
    if !espeak_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let speech = Arc::new(Speech::new(SpeechConfig::new(dir.path().join("cache"))));
    // A library without "Thanks for calling": it must come from speech.
    for entry in std::fs::read_dir(shipped_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_stem().unwrap() != "thanks-for-calling" {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let prompts = Prompts::load(dir.path(), &[Codec::Pcmu], Some(Arc::clone(&speech)));
    let greeting = vec![
        Phrase::ThanksForCalling,
        Phrase::ChurchName(Spoken::text("St Mary's Church")),
    ];
    // Not yet rendered: the caller is not kept waiting, the name is left out.
    assert!(prompts.resolve(&greeting, 8_000, dir.path()).len() < 2);
    for phrase in &greeting {
        assert!(matches!(
            wait_rendered(&speech, &phrase.text()),
            Rendering::Ready(_)
        ));
    }
    let parts = prompts.resolve(&greeting, 8_000, dir.path());
    assert_eq!(parts.len(), 2);
    assert!(
        parts
            .iter()
            .all(|p| matches!(p.source, Source::File { .. }))
    );
    let first = prompts.render(std::slice::from_ref(&greeting), Codec::Pcmu, dir.path());
    let again = prompts.render(&[greeting], Codec::Pcmu, dir.path());
    assert!(Arc::ptr_eq(&first[0], &again[0]));
}
