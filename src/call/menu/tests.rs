use chrono::{DateTime, Utc};

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

const LONDON: Tz = chrono_tz::Europe::London;

/// Shaped like the parish's real schedule: most with titles, one without,
/// one in the future, summer and winter offsets.
const PARISH: &str = r#"{
  "church_name": "St Mary's Church, Whitkirk",
  "services": [
    { "datetime": "2022-05-01T10:00:00+0100", "file": "2022-05-01-1000-easter-3.mp3" },
    { "title": "Choral Evensong", "datetime": "2022-05-01T18:00:00+0100", "file": "2022-05-01-1800-evensong.mp3" },
    { "title": "A Service of Thanksgiving in celebration of The Queen's Platinum Jubilee",
      "datetime": "2022-06-05T16:00:00+0100", "file": "2022-06-05-1600-jubilee.mp3" },
    { "title": "Trinity Sunday", "datetime": "2022-06-12T10:00:00", "file": "trinity.mp3" }
  ]
}"#;

#[test]
fn the_menu_reads_as_the_seed_says_newest_first_future_hidden() {
    let schedule = Schedule::parse_in(PARISH, LONDON).unwrap();
    let menu = Menu::at(&schedule, utc("2022-06-10T12:00:00Z"), LONDON);
    assert_eq!(
        menu.text(),
        "Thanks for calling St Mary's Church, Whitkirk.\n\
         To hear the latest service, just stay on the line.\n\
         Press 1 for the service from A Service of Thanksgiving in celebration of The Queen's Platinum Jubilee, Sunday the 5th of June.\n\
         Press 2 for the service from Choral Evensong, Sunday the 1st of May.\n\
         For Sunday the 1st of May, press 3.\n\
         While a service is playing, press star to come back to this menu."
    );
    assert_eq!(menu.choose(2).unwrap().file, "2022-05-01-1800-evensong.mp3");
    assert_eq!(
        menu.choose(4),
        None,
        "Trinity Sunday is still in the future"
    );
    // Its time comes: it is first, without a restart or a reload.
    let later = Menu::at(&schedule, utc("2022-06-12T09:00:00Z"), LONDON);
    assert_eq!(later.choose(1).unwrap().file, "trinity.mp3");
}

#[test]
fn nine_services_at_most_one_key_each() {
    let services: Vec<String> = (1..=12)
        .map(|day| {
            format!(r#"{{ "datetime": "2026-01-{day:02}T10:00:00", "file": "s{day}.mp3" }}"#)
        })
        .collect();
    let json = format!(
        r#"{{ "church_name": "St Test's", "services": [{}] }}"#,
        services.join(",")
    );
    let schedule = Schedule::parse(&json).unwrap();
    let menu = Menu::at(&schedule, utc("2026-02-01T00:00:00Z"), LONDON);
    assert_eq!(menu.items.len(), MAX_ITEMS);
    let digits: Vec<u8> = menu.items.iter().map(|i| i.digit).collect();
    assert_eq!(digits, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(menu.choose(1).unwrap().file, "s12.mp3");
    assert_eq!(menu.choose(9).unwrap().file, "s4.mp3");
    assert_eq!(menu.choose(0), None);
}

#[test]
fn ordinals_as_spoken() {
    let cases = [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (23, "23rd"),
        (31, "31st"),
    ];
    for (day, spoken) in cases {
        assert_eq!(ordinal(day), spoken);
    }
}

#[test]
fn dates_are_spoken_in_the_parish_time_zone() {
    // 23:30 UTC on Saturday 31 October 2026 is still Saturday in London
    // (GMT), but already Sunday the 1st of November in Paris (CET).
    let json = r#"{ "church_name": "St Test's", "services": [
        { "datetime": "2026-10-31T23:30:00Z", "file": "late.mp3" } ] }"#;
    let schedule = Schedule::parse(json).unwrap();
    let service = &schedule.services[0];
    let london = sentence_text(&spoken_date(service, LONDON));
    let paris = sentence_text(&spoken_date(service, chrono_tz::Europe::Paris));
    assert_eq!(london, "Saturday the 31st of October.");
    assert_eq!(paris, "Sunday the 1st of November.");
}

#[test]
fn no_church_name_no_services() {
    let json = r#"{ "church_name": " ", "services": [] }"#;
    // A blank name is refused by the schedule itself; build the menu directly.
    assert!(Schedule::parse(json).is_err());
    let schedule = Schedule {
        church_name: String::new(),
        church_name_audio: None,
        services: Vec::new(),
        problems: Vec::new(),
    };
    let menu = Menu::at(&schedule, utc("2026-01-01T00:00:00Z"), LONDON);
    assert_eq!(sentence_text(&menu.greeting()), "Thanks for calling.");
    assert!(menu.items.is_empty());
}

#[test]
fn recordings_from_the_schedule_ride_along_with_the_text() {
    let json = r#"{ "church_name": "St Test's", "church_name_audio": "church.wav", "services": [
        { "title": "Matins", "title_audio": "matins.wav",
          "datetime": "2026-01-04T10:00:00", "file": "a.mp3" } ] }"#;
    let schedule = Schedule::parse(json).unwrap();
    let menu = Menu::at(&schedule, utc("2026-02-01T00:00:00Z"), LONDON);
    assert_eq!(
        menu.greeting()[1],
        Phrase::ChurchName(Spoken {
            text: "St Test's".into(),
            audio: Some("church.wav".into())
        })
    );
    assert!(menu.sentences()[1].contains(&Phrase::Title(Spoken {
        text: "Matins".into(),
        audio: Some("matins.wav".into())
    })));
    // The text is unchanged by a recording.
    assert_eq!(
        sentence_text(&menu.sentences()[1]),
        "Press 1 for the service from Matins, Sunday the 4th of January."
    );
}

#[test]
fn every_fixed_phrase_has_its_own_prompt_name() {
    let library = Phrase::library();
    let names: Vec<String> = library.iter().map(|p| p.prompt_name().unwrap()).collect();
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    // 11 phrases, 10 digits, 7 days, 31 ordinals, 12 months.
    assert_eq!(names.len(), 108);
    for name in [
        "thanks-for-calling",
        "press",
        "press-lower",
        "for-the-service-from",
        "for",
        "digit-0",
        "digit-9",
        "sunday",
        "the",
        "1st",
        "22nd",
        "31st",
        "of",
        "january",
        "december",
        "stay-on-the-line",
        "star-returns",
        "not-an-option",
        "goodbye",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing");
    }
    assert_eq!(Phrase::Title(Spoken::text("Matins")).prompt_name(), None);
    assert_eq!(Phrase::ChurchName(Spoken::text("St X")).prompt_name(), None);
    assert_eq!(Phrase::Digit(10).prompt_name(), None);
    assert_eq!(Phrase::Ordinal(32).prompt_name(), None);
    assert_eq!(Phrase::Month(0).prompt_name(), None);
    assert_eq!(
        sentence_text(&[Phrase::NotAnOption]),
        "Sorry, that's not one of the options."
    );
    assert_eq!(
        sentence_text(&[Phrase::Goodbye]),
        "Thank you for listening. Goodbye."
    );
}

#[test]
fn the_time_reached_is_said_in_minutes_then_hours() {
    use std::time::Duration;
    let min = |m: u64| spoken_time_in(Duration::from_secs(m * 60));
    assert_eq!(
        min(23),
        [
            Phrase::Number(20),
            Phrase::Number(3),
            Phrase::MinutesIn(true)
        ]
    );
    assert_eq!(min(1), [Phrase::Number(1), Phrase::MinutesIn(false)]);
    assert_eq!(min(40), [Phrase::Number(40), Phrase::MinutesIn(true)]);
    assert_eq!(min(15), [Phrase::Number(15), Phrase::MinutesIn(true)]);
    assert_eq!(min(130), [Phrase::Number(2), Phrase::HoursIn(true)]);
    assert_eq!(min(100), [Phrase::Number(2), Phrase::HoursIn(true)]);
    // Seconds round to the nearest minute.
    assert_eq!(spoken_time_in(Duration::from_secs(89)), min(1));
    assert_eq!(spoken_time_in(Duration::from_secs(90)), min(2));
    // Every number said has its prompt.
    for m in 1..100 {
        for phrase in min(m) {
            assert!(phrase.prompt_name().is_some(), "{m}: {phrase:?}");
        }
    }
}
