//! `[audio] loudness_target` and `[audio] dynamics`: how every service,
//! the apology and the prompts are levelled (see `media::level`).

use crate::media::level::{Dynamics, Lufs};

use super::{describe, suggest};

/// Quieter than −31 LUFS an older caller strains to hear over the line's
/// own noise; louder than −10 LUFS leaves no room under the −1 dBTP
/// ceiling, so the limiter would be squashing everything.
const QUIETEST: f64 = -31.0;
const LOUDEST: f64 = -10.0;

/// A loudness in LUFS: a number (`-19`, `-18.5`), or its text from the
/// environment, with or without the unit (`"-19 LUFS"`).
pub(super) fn target(value: toml::Value) -> Result<Lufs, String> {
    let expected = format!("expected a loudness in LUFS from {QUIETEST} to {LOUDEST}, like -19");
    let lufs = match &value {
        toml::Value::Integer(n) => Some(*n as f64),
        toml::Value::Float(n) => Some(*n),
        toml::Value::String(text) => {
            let text = text.trim();
            let number = text
                .strip_suffix("LUFS")
                .or_else(|| text.strip_suffix("lufs"))
                .unwrap_or(text);
            // A typographic minus, as the documentation writes it.
            number.trim().replace('−', "-").parse().ok()
        }
        _ => None,
    };
    match lufs {
        Some(lufs) if (QUIETEST..=LOUDEST).contains(&lufs) => Ok(Lufs(lufs)),
        Some(lufs) if lufs > 0.0 => Err(format!(
            "{expected}, found {}: loudness targets are negative (did you mean -{lufs}?)",
            describe(&value)
        )),
        _ => Err(format!("{expected}, found {}", describe(&value))),
    }
}

/// `"gentle"` or `"off"`.
pub(super) fn dynamics(value: toml::Value) -> Result<Dynamics, String> {
    let expected =
        "expected \"gentle\" (quiet passages raised, loud ones lowered a little) or \"off\"";
    let toml::Value::String(name) = &value else {
        return Err(format!("{expected}, found {}", describe(&value)));
    };
    Dynamics::from_config_name(name).ok_or_else(|| {
        match suggest::nearest(&name.trim().to_ascii_lowercase(), Dynamics::NAMES) {
            Some(near) => format!("unknown dynamics \"{name}\" (did you mean \"{near}\"?)"),
            None => format!("{expected}, found {}", describe(&value)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_numbers_or_text() {
        assert_eq!(target(toml::Value::Integer(-19)), Ok(Lufs(-19.0)));
        assert_eq!(target(toml::Value::Float(-18.5)), Ok(Lufs(-18.5)));
        assert_eq!(target("-23".into()), Ok(Lufs(-23.0)));
        assert_eq!(target(" -16 LUFS ".into()), Ok(Lufs(-16.0)));
        assert_eq!(target("−20".into()), Ok(Lufs(-20.0)));
    }

    #[test]
    fn targets_out_of_range_say_what_is_expected() {
        let error = target(toml::Value::Integer(19)).unwrap_err();
        assert!(error.contains("did you mean -19"), "{error}");
        let error = target(toml::Value::Integer(-50)).unwrap_err();
        assert!(error.contains("from -31 to -10"), "{error}");
        let error = target("loud".into()).unwrap_err();
        assert!(error.contains("\"loud\""), "{error}");
    }

    #[test]
    fn dynamics_names_and_typos() {
        assert_eq!(dynamics("gentle".into()), Ok(Dynamics::Gentle));
        assert_eq!(dynamics(" OFF ".into()), Ok(Dynamics::Off));
        let error = dynamics("gentel".into()).unwrap_err();
        assert!(error.contains("did you mean \"gentle\""), "{error}");
        assert!(dynamics(toml::Value::Boolean(false)).is_err());
    }
}
