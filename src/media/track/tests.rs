use super::*;
use crate::media::decode::fixtures::{ffmpeg, have_ffmpeg, tone, write_wav};
use std::time::Instant;

fn wait_until_done(track: &Track) -> TrackStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = track.status();
        if !matches!(status, TrackStatus::Decoding { .. }) || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn complete_track_reads_back() {
    let frames: Vec<Vec<u8>> = (0..120u8)
        .map(|i| vec![i; 1 + usize::from(i % 7)])
        .collect();
    let track = Track::complete(Codec::Pcmu, "t", frames.clone());
    assert_eq!(track.frames_available(), 120);
    assert_eq!(track.duration(), Some(Duration::from_millis(2400)));
    let mut out = Vec::with_capacity(16);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(track.read_frame(i, &mut out), FrameRead::Ready);
        assert_eq!(&out, f, "frame {i}");
    }
    assert_eq!(track.read_frame(120, &mut out), FrameRead::End);
    assert!(matches!(
        track.status(),
        TrackStatus::Complete { frames: 120 }
    ));
    assert_eq!(track.label(), "t");
    assert_eq!(track.codec(), Codec::Pcmu);
}

#[test]
fn pending_then_failed() {
    let track = Track::new(Codec::Pcma, "x", None);
    let mut out = Vec::new();
    assert_eq!(track.read_frame(0, &mut out), FrameRead::Pending);
    let mut writer = ChunkWriter::default();
    for i in 0..FRAMES_PER_CHUNK + 3 {
        if let Some(chunk) = writer.push(&[i as u8; 4]) {
            track.publish(chunk);
        }
    }
    assert_eq!(track.read_frame(49, &mut out), FrameRead::Ready);
    assert_eq!(out, vec![49; 4]);
    assert_eq!(track.read_frame(50, &mut out), FrameRead::Pending);
    let error = DecodeError::Truncated {
        path: "x".into(),
        frames_decoded: 1,
        frames_expected: Some(2),
    };
    track.finish(writer.take(), State::Failed(Arc::new(error)));
    // Frames decoded before the failure stay playable.
    assert_eq!(track.read_frame(52, &mut out), FrameRead::Ready);
    assert_eq!(track.read_frame(53, &mut out), FrameRead::Failed);
    match track.status() {
        TrackStatus::Failed { frames, error } => {
            assert_eq!(frames, 53);
            assert_eq!(error.code(), "audio.truncated");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_pcm_makes_whole_frames() {
    let pcm: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.1).sin() * 0.3).collect();
    let ulaw = Track::from_pcm(Codec::Pcmu, "tone", &pcm, 44_100).unwrap();
    assert_eq!(ulaw.frames_available(), 50);
    let mut out = Vec::new();
    assert_eq!(ulaw.read_frame(0, &mut out), FrameRead::Ready);
    assert_eq!(out.len(), 160);
    let opus = Track::from_pcm(Codec::Opus, "tone", &pcm, 44_100).unwrap();
    assert_eq!(opus.frames_available(), 50);
    assert_eq!(opus.read_frame(49, &mut out), FrameRead::Ready);
    assert!(!out.is_empty() && out.len() < 400);
    assert!(Track::from_pcm(Codec::Pcmu, "bad", &pcm, 0).is_err());
}

#[test]
fn missing_and_garbage_fail_fast() {
    let cache = TrackCache::new(4);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = cache
        .open(&dir.path().join("nope.mp3"), Codec::Pcmu)
        .unwrap_err();
    assert_eq!(err.code(), "audio.missing");
    let garbage = dir.path().join("garbage.mp3");
    let mut bytes = vec![0u8; 300_000];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    std::fs::write(&garbage, &bytes).unwrap();
    let err = cache.open(&garbage, Codec::Pcmu).unwrap_err();
    assert!(
        matches!(
            err.code(),
            "audio.unsupported" | "audio.corrupt" | "audio.truncated"
        ),
        "{err}"
    );
    // Remembered: the same file is not decoded again.
    let again = cache.open(&garbage, Codec::Pcmu).unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(cache.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn long_file_plays_at_once_and_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.wav");
    write_wav(&path, 44_100, 1, 60.0, tone(440.0, 44_100, 0.4));
    let cache = TrackCache::new(4);
    let started = Instant::now();
    let track = cache.open(&path, Codec::Pcmu).unwrap();
    let opened_in = started.elapsed();
    let mut out = Vec::new();
    assert_eq!(track.read_frame(0, &mut out), FrameRead::Ready);
    assert_eq!(out.len(), 160);
    assert!(track.frames_available() >= FRAMES_PER_CHUNK);
    assert_eq!(track.duration(), Some(Duration::from_secs(60)));
    assert!(
        opened_in < Duration::from_secs(1),
        "open took {opened_in:?}"
    );
    // Same file, other spelling: the same track.
    let dotted = dir.path().join(".").join("service.wav");
    assert!(Arc::ptr_eq(
        &track,
        &cache.open(&dotted, Codec::Pcmu).unwrap()
    ));
    // Other codec: another track.
    let opus = cache.open(&path, Codec::Opus).unwrap();
    assert!(!Arc::ptr_eq(&track, &opus));
    assert!(matches!(
        wait_until_done(&track),
        TrackStatus::Complete { frames: 3000 }
    ));
    assert!(matches!(
        wait_until_done(&opus),
        TrackStatus::Complete { frames: 3000 }
    ));
    assert_eq!(track.read_frame(2999, &mut out), FrameRead::Ready);
    assert_eq!(track.read_frame(3000, &mut out), FrameRead::End);
}

#[test]
fn replaced_file_is_decoded_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    write_wav(&path, 8000, 1, 0.5, tone(440.0, 8000, 0.4));
    let cache = TrackCache::new(4);
    let first = cache.open(&path, Codec::Pcma).unwrap();
    write_wav(&path, 8000, 1, 0.7, tone(440.0, 8000, 0.4));
    let second = cache.open(&path, Codec::Pcma).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(first.frames_available(), 25);
    assert_eq!(second.frames_available(), 35);
}

#[test]
fn eviction_spares_tracks_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TrackCache::new(2);
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("{i}.wav"));
            write_wav(&p, 8000, 1, 0.2, tone(440.0, 8000, 0.4));
            p
        })
        .collect();
    let held = cache.open(&paths[0], Codec::Pcmu).unwrap();
    let dropped = Arc::downgrade(&cache.open(&paths[1], Codec::Pcmu).unwrap());
    let _third = cache.open(&paths[2], Codec::Pcmu).unwrap();
    assert_eq!(cache.len(), 2);
    // Track 0 is older but held by a "call": track 1 went instead.
    assert!(Arc::ptr_eq(
        &held,
        &cache.open(&paths[0], Codec::Pcmu).unwrap()
    ));
    assert!(dropped.upgrade().is_none(), "track 1 was evicted and freed");
    let reopened = cache.open(&paths[1], Codec::Pcmu).unwrap();
    assert_eq!(reopened.frames_available(), 10);
    // Everything held: the cache grows past capacity rather than drop them.
    assert_eq!(cache.len(), 3);
}

fn truncated_becomes_failed(path: &Path) {
    let cache = TrackCache::new(4);
    match cache.open(path, Codec::Pcmu) {
        Err(e) => assert_eq!(e.code(), "audio.truncated", "{e}"),
        Ok(track) => match wait_until_done(&track) {
            TrackStatus::Failed { error, frames } => {
                assert_eq!(error.code(), "audio.truncated", "{error}");
                let mut out = Vec::new();
                assert_eq!(track.read_frame(frames, &mut out), FrameRead::Failed);
            }
            other => panic!("{}: {other:?}", path.display()),
        },
    }
}

#[test]
fn truncated_wav_fails_the_track() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    write_wav(&path, 8000, 1, 6.0, tone(440.0, 8000, 0.4));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    truncated_becomes_failed(&path);
}

#[test]
fn truncated_mp3_fails_the_track() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    write_wav(&wav, 44_100, 1, 6.0, tone(440.0, 44_100, 0.4));
    let mp3 = ffmpeg(&wav, dir.path(), "cut.mp3", &["-b:a", "64k"]);
    let bytes = std::fs::read(&mp3).unwrap();
    std::fs::write(&mp3, &bytes[..bytes.len() / 2]).unwrap();
    truncated_becomes_failed(&mp3);
}

#[test]
fn open_bytes_shares_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.wav");
    write_wav(&path, 16_000, 1, 0.3, tone(440.0, 16_000, 0.4));
    let bytes = std::fs::read(&path).unwrap();
    let cache = TrackCache::new(4);
    let a = cache
        .open_bytes("net", bytes.clone(), Some("wav"), Codec::Opus)
        .unwrap();
    let b = cache
        .open_bytes("net", bytes, Some("wav"), Codec::Opus)
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.frames_available(), 15);
}

#[test]
fn a_panicking_decoder_becomes_an_error() {
    let err = without_panics::<()>(Path::new("evil.mp3"), || panic!("demuxer bug")).unwrap_err();
    assert_eq!(err.code(), "audio.corrupt");
    assert_eq!(err.path(), Path::new("evil.mp3"));
}

#[test]
fn a_file_measured_to_the_end_reopens_at_one_static_gain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.wav");
    write_wav(&path, 16_000, 1, 3.0, tone(440.0, 16_000, 0.02));
    let cache = TrackCache::new(4);
    let first = cache.open(&path, Codec::Pcmu).unwrap();
    assert!(matches!(
        wait_until_done(&first),
        TrackStatus::Complete { .. }
    ));
    let first_level = first.level().expect("levelled");
    assert!(first_level.adaptive);
    let measured = first_level.measured.expect("a tone is audible");
    // Held by a caller: kept as it is.
    assert!(Arc::ptr_eq(
        &first,
        &cache.open(&path, Codec::Pcmu).unwrap()
    ));
    drop(first);
    let second = cache.open(&path, Codec::Pcmu).unwrap();
    assert!(matches!(
        wait_until_done(&second),
        TrackStatus::Complete { .. }
    ));
    let level = second.level().expect("levelled");
    assert!(!level.adaptive);
    let expected = (crate::media::level::DEFAULT_TARGET.0 - measured.0) as f32;
    assert!((level.gain_db - expected).abs() < 0.01, "{level:?}");
    // A-law shares the measurement made at the same rate.
    let alaw = cache.open(&path, Codec::Pcma).unwrap();
    assert!(matches!(
        wait_until_done(&alaw),
        TrackStatus::Complete { .. }
    ));
    assert!(!alaw.level().expect("levelled").adaptive);
}
