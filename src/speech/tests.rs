use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::media::decode::Decoder;

/// Whether the real espeak-ng is installed. Without it the test is skipped
/// with a visible note on a developer's machine, but fails in CI, where the
/// set-up installs it.
pub(crate) fn espeak_available() -> bool {
    let found = Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "espeak-ng is not installed, and CI is set: install it (apt-get install espeak-ng)"
        );
        eprintln!("SKIPPED: espeak-ng is not installed");
    }
    found
}

/// Polls until `text` is no longer pending (the render thread is real).
pub(crate) fn wait_rendered(speech: &Speech, text: &str) -> Rendering {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rendering = speech.rendering(text);
        if rendering != Rendering::Pending || Instant::now() > deadline {
            return rendering;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn config(command: PathBuf, cache_dir: &Path) -> SpeechConfig {
    SpeechConfig {
        command,
        ..SpeechConfig::new(cache_dir)
    }
}

#[test]
fn espeak_renders_once_and_the_cache_answers_after() {
    if !espeak_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let speech = Speech::new(SpeechConfig::new(&cache));
    assert_eq!(speech.get("Choral Evensong"), None, "first ask only queues");
    let Rendering::Ready(path) = wait_rendered(&speech, "Choral Evensong") else {
        panic!("{:?}", speech.rendering("Choral Evensong"));
    };
    assert_eq!(speech.get("  Choral   Evensong "), Some(path.clone()));
    // A real WAV of about a second of speech.
    let mut decoder = Decoder::open(&path).unwrap();
    let mut samples = Vec::new();
    while decoder.next_chunk(&mut samples).unwrap() {}
    let seconds = samples.len() as f64 / f64::from(decoder.sample_rate_hz());
    assert!((0.4..5.0).contains(&seconds), "{seconds} s");
    assert!(samples.iter().any(|s| s.abs() > 0.1));

    // A restart finds it on disk; another rate is another file.
    drop(speech);
    let again = Speech::new(SpeechConfig::new(&cache));
    assert_eq!(again.get("Choral Evensong"), Some(path.clone()));
    let faster = Speech::new(SpeechConfig {
        rate: 175,
        ..SpeechConfig::new(&cache)
    });
    assert_eq!(faster.get("Choral Evensong"), None);
    assert!(matches!(
        wait_rendered(&faster, "Choral Evensong"),
        Rendering::Ready(other) if other != path
    ));
}

#[test]
fn a_missing_program_is_reported_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let speech = Speech::new(config(
        dir.path().join("no-such-espeak"),
        &dir.path().join("cache"),
    ));
    assert_eq!(speech.get("St Mary's"), None);
    let Rendering::Failed(reason) = wait_rendered(&speech, "St Mary's") else {
        panic!("{:?}", speech.rendering("St Mary's"));
    };
    assert!(reason.starts_with("cannot run"), "{reason}");
    assert!(reason.contains("no-such-espeak"), "{reason}");
    // Not queued again for a while.
    assert_eq!(speech.get("St Mary's"), None);
    assert!(matches!(
        speech.rendering("St Mary's"),
        Rendering::Failed(_)
    ));
    assert_eq!(speech.get("   "), None, "nothing to say");
}

#[test]
fn a_failing_program_runs_once_per_text() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let command = script(
        dir.path(),
        "fails",
        &format!("echo x >> {}; echo 'no voice' >&2; exit 1", count.display()),
    );
    let speech = Speech::new(config(command, &dir.path().join("cache")));
    speech.prepare(["Matins", "Matins"]);
    let Rendering::Failed(reason) = wait_rendered(&speech, "Matins") else {
        panic!();
    };
    assert!(reason.contains("no voice"), "{reason}");
    speech.get("Matins");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
}

#[test]
fn the_cached_file_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Writes a header, pauses, then the text it was given on stdin: a slow
    // render that a reader might catch half-way.
    let command = script(
        dir.path(),
        "slow",
        "while [ \"$1\" != -w ]; do shift; done; out=$2\n\
         printf 'RIFF' > \"$out\"; sleep 0.3\n\
         head -c 64 /dev/zero >> \"$out\"; cat >> \"$out\"",
    );
    let speech = Speech::new(config(command, &cache));
    assert_eq!(speech.get("-v Trinity Sunday"), None);
    let final_path = speech.cache_path("-v Trinity Sunday");
    let deadline = Instant::now() + Duration::from_secs(10);
    while speech.rendering("-v Trinity Sunday") == Rendering::Pending {
        assert!(!final_path.exists(), "visible before it was finished");
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(speech.get("-v Trinity Sunday"), Some(final_path.clone()));
    let bytes = std::fs::read(&final_path).unwrap();
    assert_eq!(bytes.len(), 4 + 64 + "-v Trinity Sunday".len());
    assert!(bytes.ends_with(b"-v Trinity Sunday"), "text goes on stdin");
    // Only the finished file is left in the cache.
    let names: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(names.len(), 1);
}
