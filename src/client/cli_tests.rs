//! `dial-a-service call` flags for key presses, parsed as clap parses them
//! and applied to [`CallOptions`].

use std::time::Duration;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

/// The options `dial-a-service call sip:x@127.0.0.1 <args>` would place.
fn call_options(args: &[&str]) -> Result<CallOptions, clap::Error> {
    let argv = ["dial-a-service", "call", "sip:service@127.0.0.1:5060"];
    let cli = Cli::try_parse_from(argv.iter().chain(args))?;
    let Command::Call { codec, dtmf, .. } = cli.command else {
        panic!("parsed as another command");
    };
    let mut options = CallOptions::new("sip:service@127.0.0.1:5060", codec);
    dtmf.apply(&mut options);
    Ok(options)
}

fn presses(options: &CallOptions) -> Vec<(u128, char)> {
    options
        .dtmf
        .iter()
        .map(|p| (p.at.as_millis(), p.key.as_char()))
        .collect()
}

#[test]
fn no_dtmf_flags_press_nothing_and_keep_the_defaults() {
    let options = call_options(&[]).unwrap();
    assert!(options.dtmf.is_empty());
    assert_eq!(options.dtmf_via, vec![KeyChannel::Rfc4733]);
    assert_eq!(options.dtmf_duration, Duration::from_millis(100));
    assert_eq!(options.dtmf_info_type, InfoType::DtmfRelay);
}

#[test]
fn one_key_goes_three_seconds_after_the_answer() {
    let options = call_options(&["--dtmf", "2"]).unwrap();
    assert_eq!(presses(&options), vec![(3_000, '2')]);
}

#[test]
fn keys_delay_and_interval_in_any_duration_form() {
    let options = call_options(&[
        "--dtmf",
        "2*5#",
        "--dtmf-delay",
        "500ms",
        "--dtmf-interval",
        "1.5",
    ])
    .unwrap();
    assert_eq!(
        presses(&options),
        vec![(500, '2'), (2_000, '*'), (3_500, '5'), (5_000, '#')]
    );
    let options = call_options(&["--dtmf=D", "--dtmf-delay=2s"]).unwrap();
    assert_eq!(presses(&options), vec![(2_000, 'D')]);
}

#[test]
fn vias_repeat_or_comma_separate() {
    let options = call_options(&["--dtmf", "1", "--dtmf-via", "rfc4733,info"]).unwrap();
    assert_eq!(
        options.dtmf_via,
        vec![KeyChannel::Rfc4733, KeyChannel::SipInfo]
    );
    let options = call_options(&["--dtmf-via", "inband", "--dtmf-via", "info"]).unwrap();
    assert_eq!(
        options.dtmf_via,
        vec![KeyChannel::InBand, KeyChannel::SipInfo]
    );
    let options = call_options(&["--dtmf-info-type", "dtmf", "--dtmf-duration", "250ms"]).unwrap();
    assert_eq!(options.dtmf_info_type, InfoType::Dtmf);
    assert_eq!(options.dtmf_duration, Duration::from_millis(250));
}

#[test]
fn bad_values_are_clear_errors() {
    let error = call_options(&["--dtmf", "2x5"]).unwrap_err().to_string();
    assert!(
        error.contains("'x' is not a keypad key: use 0-9, *, #, A-D"),
        "{error}"
    );
    let error = call_options(&["--dtmf", ""]).unwrap_err().to_string();
    assert!(error.contains("no keys given"), "{error}");
    let error = call_options(&["--dtmf-via", "rfc4733,fax"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"fax\" is not a dtmf way"), "{error}");
    let error = call_options(&["--dtmf-delay", "soon"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("expected a duration"), "{error}");
    let error = call_options(&["--dtmf-delay=-1"]).unwrap_err().to_string();
    assert!(error.contains("not a usable number of seconds"), "{error}");
    assert!(call_options(&["--dtmf-info-type", "text"]).is_err());
}
