//! Config errors never echo a secret: a TOML syntax error is named by line
//! and column without quoting the file, and values of secret-looking keys
//! are scrubbed from every message.

use std::path::Path;

use super::secrets::{is_secret_key, scrub, secret_lines, secrets_of};
use super::*;

const SECRET: &str = "hunter2-s3cret";

fn syntax_error(text: &str) -> String {
    let error = Config::from_toml_str(text, Path::new("/etc/das/das.toml"), |_| None)
        .expect_err("a syntax error");
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    let shown = error.to_string();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    shown
}

fn trunk(lines: &str) -> String {
    format!("[trunk]\nregistrar = \"sip:sip.example.com\"\nusername = \"stmarys\"\n{lines}")
}

#[test]
fn a_syntax_error_on_the_password_line_is_named_not_quoted() {
    let shown = syntax_error(&trunk(&format!("password = \"{SECRET}\" extra\n")));
    assert!(
        shown.starts_with("/etc/das/das.toml: line 4, column 29: not valid toml: "),
        "{shown}"
    );
}

#[test]
fn a_syntax_error_beside_the_password_line_is_named_not_quoted() {
    // toml's own message would show these lines, and the ones around them.
    let after = syntax_error(&trunk(&format!(
        "password = \"{SECRET}\"\nexpires = = 300\n"
    )));
    assert!(after.contains("line 5, column 11"), "{after}");
    let before = syntax_error(&trunk(&format!(
        "transport = udp\npassword = \"{SECRET}\"\n"
    )));
    assert!(before.contains("line 4, column 13"), "{before}");
}

#[test]
fn an_unterminated_string_holding_the_password_is_named_not_quoted() {
    for text in [
        trunk(&format!("password = \"{SECRET}\n")),
        trunk(&format!("password = '{SECRET}\n")),
        trunk(&format!("password = \"\"\"{SECRET}\n")),
        trunk(&format!("password = '''{SECRET}\nkeepalive = \"25s\"\n")),
        // A string left open on the line before swallows the password line.
        trunk(&format!(
            "auth_username = \"\"\"stmarys\npassword = \"{SECRET}\"\n"
        )),
        // Not even a password key: a secret-looking one, in no known section.
        format!("[extra]\napi_token = \"{SECRET}\n"),
    ] {
        let shown = syntax_error(&text);
        assert!(shown.contains(": line "), "{shown}");
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    // Two of these characters take two bytes each: 40 in bytes.
    let shown = syntax_error(&trunk(&format!("password = \"pässwörd-{SECRET}\" x\n")));
    assert!(shown.contains("line 4, column 38"), "{shown}");
}

#[test]
fn a_bad_password_value_names_its_kind_only() {
    for value in [
        "[\"hunter2-s3cret\"]",
        "{ value = \"hunter2-s3cret\" }",
        "12345",
    ] {
        let text = trunk(&format!("password = {value}\n"));
        let error = Config::from_toml_str(&text, Path::new("/etc/das/das.toml"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[trunk] password: expected a password"),
            "{error}"
        );
        assert!(
            !error.contains("s3cret") && !error.contains("12345"),
            "{error}"
        );
    }
}

#[test]
fn a_password_file_error_never_shows_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let not_text = dir.path().join("pw.bin");
    let mut bytes = SECRET.as_bytes().to_vec();
    bytes.push(0xff);
    std::fs::write(&not_text, bytes).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let huge = dir.path().join("huge");
    std::fs::write(&huge, SECRET.repeat(2000)).unwrap();
    // An endless file (a mistaken /dev/zero) must not hang the start.
    let endless = std::path::Path::new("/dev/zero");
    for file in [
        not_text.as_path(),
        empty.as_path(),
        dir.path(),
        huge.as_path(),
        endless,
    ] {
        let text = trunk(&format!(
            "password_file = {:?}\n",
            file.display().to_string()
        ));
        let error = Config::from_toml_str(&text, &dir.path().join("das.toml"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("password file"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
    let env =
        |name: &str| (name == "DAS_TRUNK_PASSWORD_FILE").then(|| not_text.display().to_string());
    let error = Config::from_toml_str(&trunk(""), &dir.path().join("das.toml"), env)
        .unwrap_err()
        .to_string();
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn secret_looking_keys_are_recognised() {
    for key in [
        "password",
        "password_file",
        "PASSWORD",
        "passwd",
        "client_secret",
        "api_token",
        "credentials",
        "private_key",
        "apikey",
    ] {
        assert!(is_secret_key(key), "{key}");
    }
    for key in [
        "username",
        "registrar",
        "keepalive",
        "keep_latest",
        "listen",
        "transport",
    ] {
        assert!(!is_secret_key(key), "{key}");
    }
}

#[test]
fn secret_values_are_scrubbed_from_a_message_however_quoted() {
    let secrets = secrets_of(
        "password",
        &toml::Value::Array(vec![SECRET.into(), "pa\"ss-word".into()]),
    );
    let message = format!("bad: {SECRET:?}, {SECRET} and {:?}", "pa\"ss-word");
    assert_eq!(
        scrub(message, &secrets),
        "bad: \"(not shown)\", (not shown) and \"(not shown)\""
    );
    // Other keys' values are theirs to show.
    assert!(secrets_of("username", &SECRET.into()).is_empty());
    // A short secret is left: no message of ours holds it, and scrubbing every
    // "ab" would garble the message.
    assert_eq!(scrub("about".into(), &["ab".into()]), "about");
    // Secret lines of a file that does not parse, with and without quotes.
    let lines = secret_lines(&format!("user = \"u\"\n  password =  \"{SECRET}\n"));
    assert_eq!(lines, [format!("\"{SECRET}"), SECRET.to_owned()]);
}
