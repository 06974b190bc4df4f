//! A real softphone: baresip calls the line with Opus, records what it
//! decodes (the `sndfile` module), and the recording must match the service.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Parish, audio, free_udp_port, have_tool};

#[test]
fn baresip_calls_with_opus_and_hears_the_service() {
    if !have_tool("baresip") || !have_tool("espeak-ng") || !have_tool("sox") || !have_tool("ffmpeg")
    {
        return;
    }
    let parish = Parish::new(
        "Opus test",
        "Welcome to this service. Let us pray for all who listen by telephone today.",
        6.0,
    );
    let dir = &parish.dir;
    let service = &parish.service_wav;
    let line = parish.line();

    // baresip needs a sound source: a long silence (it hangs up when it ends).
    let home = dir.path().join("baresip");
    std::fs::create_dir(&home).unwrap();
    let silence = home.join("silence.wav");
    let status = Command::new("sox")
        .args([
            "-n",
            "-r",
            "48000",
            "-c",
            "2",
            "-b",
            "16",
            silence.to_str().unwrap(),
            "trim",
            "0",
            "60",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let sip_port = free_udp_port();
    std::fs::write(
        home.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nsip_transports udp\n\
             net_interface 127.0.0.1\naudio_player alsa,null\naudio_alert alsa,null\n\
             audio_source aufile,{silence}\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule opus.so\nmodule aufile.so\nmodule alsa.so\nmodule sndfile.so\n\
             module_app account.so\nmodule_app menu.so\nsnd_path {snd}\n",
            silence = silence.display(),
            snd = home.display()
        ),
    )
    .unwrap();
    std::fs::write(
        home.join("accounts"),
        "<sip:tester@127.0.0.1>;regint=0;audio_codecs=opus/48000/2\n",
    )
    .unwrap();

    let output = Command::new("timeout")
        .args(["40", "baresip", "-f", home.to_str().unwrap(), "-e"])
        .arg(format!("/dial {}", line.uri()))
        .args(["-t", "20"])
        .current_dir(&home)
        .output()
        .expect("run baresip");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        log.contains("Call established"),
        "baresip did not connect:\n{log}"
    );
    assert!(log.contains("opus"), "Opus was negotiated:\n{log}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        line.log_count("code=\"call.finished\"") >= 1,
        "the line hung up at the end:\n{}",
        line.log_text()
    );

    let recording = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .expect("baresip's recording of what it heard");
    let (heard, rate) = audio::read_wav(&recording);
    assert_eq!(rate, 48_000);
    let played = audio::reference(service, 48_000);
    let score = audio::windowed_correlation(&heard, &played, rate, 10.0);
    eprintln!("baresip/Opus windowed correlation: {score:.3}");
    assert!(
        score >= 0.8,
        "what baresip heard does not match the service: {score:.3}"
    );
}
