//! The spoken menu: which services are offered, with which key, and the
//! words that say so (the seed's wording: "Press 1 for the service from
//! Choral Evensong, Sunday the 1st of May. For Sunday the 1st of May,
//! press 2.").
//!
//! The menu is a list of sentences made of [`Phrase`]s. Each phrase is one
//! prompt of the prompt library (a recorded word or phrase) or a piece of
//! text for speech synthesis (church name, titles), so the same structure
//! prints as text (`dial-a-service menu`) and plays as audio.

use chrono::{DateTime, Datelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::source::schedule::{Schedule, Service};

/// One key per service: the old line said nine, so nine it is.
pub const MAX_ITEMS: usize = 9;

/// Words the schedule gives as text, with the parish's recording of them if
/// it made one (`church_name_audio`, `title_audio`): the recording wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spoken {
    pub text: String,
    /// A file name inside the audio folder, checked by the schedule.
    pub audio: Option<String>,
}

impl Spoken {
    /// Text only, for synthesis.
    pub fn text(text: impl Into<String>) -> Spoken {
        Spoken {
            text: text.into(),
            audio: None,
        }
    }
}

/// One prompt: a fixed word or phrase, or text to be spoken.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Phrase {
    ThanksForCalling,
    /// The church name, spoken from its recording or from text.
    ChurchName(Spoken),
    StayOnTheLine,
    Press,
    /// "press", lower case after "For …,".
    PressAfter,
    ForTheServiceFrom,
    For,
    /// A service title, spoken from its recording or from text.
    Title(Spoken),
    Digit(u8),
    Weekday(Weekday),
    The,
    /// Day of the month, 1–31, spoken as an ordinal ("1st").
    Ordinal(u32),
    Of,
    /// Month, 1–12.
    Month(u32),
    StarReturns,
    /// After a key that chooses nothing.
    NotAnOption,
    /// Before hanging up at the end of a service.
    Goodbye,
    /// "We can't play that service just now, so here is the service from",
    /// before the date of the one that plays instead.
    CannotPlayHereIs,
    /// The offer to carry on, for a caller who called before: "Welcome
    /// back." "To carry on with" (a title, or "the service from" a date)
    /// "from where you stopped, about" (a number) "minutes in, press 1."
    /// "Or stay on the line for the menu."
    WelcomeBack,
    ToCarryOnWith,
    TheServiceFrom,
    FromWhereYouStoppedAbout,
    /// 1–19, and the tens 20–90: "twenty" "three" says 23.
    Number(u32),
    /// "minute in" / "minutes in" (`true`: plural).
    MinutesIn(bool),
    /// "hour in" / "hours in".
    HoursIn(bool),
    OrStayForTheMenu,
}

impl Phrase {
    /// The words, for printing and for speech synthesis.
    pub fn text(&self) -> String {
        match self {
            Phrase::ThanksForCalling => "Thanks for calling".to_owned(),
            Phrase::ChurchName(spoken) | Phrase::Title(spoken) => spoken.text.clone(),
            Phrase::StayOnTheLine => {
                "To hear the latest service, just stay on the line.".to_owned()
            }
            Phrase::Press => "Press".to_owned(),
            Phrase::PressAfter => "press".to_owned(),
            Phrase::ForTheServiceFrom => "for the service from".to_owned(),
            Phrase::For => "For".to_owned(),
            Phrase::Digit(d) => d.to_string(),
            Phrase::Weekday(day) => weekday_name(*day).to_owned(),
            Phrase::The => "the".to_owned(),
            Phrase::Ordinal(day) => ordinal(*day),
            Phrase::Of => "of".to_owned(),
            Phrase::Month(month) => month_name(*month).to_owned(),
            Phrase::StarReturns => {
                "While a service is playing, press star to come back to this menu.".to_owned()
            }
            Phrase::NotAnOption => "Sorry, that's not one of the options.".to_owned(),
            Phrase::Goodbye => "Thank you for listening. Goodbye.".to_owned(),
            Phrase::CannotPlayHereIs => {
                "We can't play that service just now, so here is the service from".to_owned()
            }
            Phrase::WelcomeBack => "Welcome back.".to_owned(),
            Phrase::ToCarryOnWith => "To carry on with".to_owned(),
            Phrase::TheServiceFrom => "the service from".to_owned(),
            Phrase::FromWhereYouStoppedAbout => "from where you stopped, about".to_owned(),
            Phrase::Number(n) => n.to_string(),
            Phrase::MinutesIn(false) => "minute in".to_owned(),
            Phrase::MinutesIn(true) => "minutes in".to_owned(),
            Phrase::HoursIn(false) => "hour in".to_owned(),
            Phrase::HoursIn(true) => "hours in".to_owned(),
            Phrase::OrStayForTheMenu => "Or stay on the line for the menu.".to_owned(),
        }
    }

    /// The file name (without extension) of this phrase in the prompt
    /// library, e.g. `for-the-service-from`, `digit-1`, `sunday`, `21st`.
    /// `None` for words from the schedule (church name, titles) and for
    /// values no prompt exists for (a digit above 9, day 32, month 13).
    pub fn prompt_name(&self) -> Option<String> {
        let fixed = match self {
            Phrase::ChurchName(_) | Phrase::Title(_) => return None,
            Phrase::ThanksForCalling => "thanks-for-calling",
            Phrase::StayOnTheLine => "stay-on-the-line",
            Phrase::Press => "press",
            Phrase::PressAfter => "press-lower",
            Phrase::ForTheServiceFrom => "for-the-service-from",
            Phrase::For => "for",
            Phrase::The => "the",
            Phrase::Of => "of",
            Phrase::StarReturns => "star-returns",
            Phrase::NotAnOption => "not-an-option",
            Phrase::Goodbye => "goodbye",
            Phrase::CannotPlayHereIs => "cannot-play-here-is",
            Phrase::WelcomeBack => "welcome-back",
            Phrase::ToCarryOnWith => "to-carry-on-with",
            Phrase::TheServiceFrom => "the-service-from",
            Phrase::FromWhereYouStoppedAbout => "from-where-you-stopped-about",
            Phrase::MinutesIn(false) => "minute-in",
            Phrase::MinutesIn(true) => "minutes-in",
            Phrase::HoursIn(false) => "hour-in",
            Phrase::HoursIn(true) => "hours-in",
            Phrase::OrStayForTheMenu => "or-stay-for-the-menu",
            Phrase::Number(n @ (1..=19 | 20 | 30 | 40 | 50 | 60 | 70 | 80 | 90)) => {
                return Some(format!("number-{n}"));
            }
            Phrase::Number(_) => return None,
            Phrase::Digit(d @ 0..=9) => return Some(format!("digit-{d}")),
            Phrase::Ordinal(day @ 1..=31) => return Some(ordinal(*day)),
            Phrase::Month(month @ 1..=12) => return Some(month_name(*month).to_lowercase()),
            Phrase::Weekday(day) => return Some(weekday_name(*day).to_lowercase()),
            Phrase::Digit(_) | Phrase::Ordinal(_) | Phrase::Month(_) => return None,
        };
        Some(fixed.to_owned())
    }

    /// Every phrase of the prompt library, once each, in a stable order.
    pub fn library() -> Vec<Phrase> {
        let mut all = vec![
            Phrase::ThanksForCalling,
            Phrase::StayOnTheLine,
            Phrase::Press,
            Phrase::PressAfter,
            Phrase::ForTheServiceFrom,
            Phrase::For,
            Phrase::The,
            Phrase::Of,
            Phrase::StarReturns,
            Phrase::NotAnOption,
            Phrase::Goodbye,
            Phrase::CannotPlayHereIs,
            Phrase::WelcomeBack,
            Phrase::ToCarryOnWith,
            Phrase::TheServiceFrom,
            Phrase::FromWhereYouStoppedAbout,
            Phrase::MinutesIn(false),
            Phrase::MinutesIn(true),
            Phrase::HoursIn(false),
            Phrase::HoursIn(true),
            Phrase::OrStayForTheMenu,
        ];
        all.extend((1..=19).chain((20..=90).step_by(10)).map(Phrase::Number));
        all.extend((0..=9).map(Phrase::Digit));
        let mut day = Weekday::Mon;
        for _ in 0..7 {
            all.push(Phrase::Weekday(day));
            day = day.succ();
        }
        all.extend((1..=31).map(Phrase::Ordinal));
        all.extend((1..=12).map(Phrase::Month));
        all
    }
}

/// "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st".
pub fn ordinal(day: u32) -> String {
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{day}{suffix}")
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES
        .get(month.wrapping_sub(1) as usize)
        .copied()
        .unwrap_or("")
}

/// "Sunday the 1st of May", in the parish's time zone (the year is not said).
pub fn spoken_date(service: &Service, timezone: Tz) -> Vec<Phrase> {
    let local = service.datetime.with_timezone(&timezone);
    vec![
        Phrase::Weekday(local.weekday()),
        Phrase::The,
        Phrase::Ordinal(local.day()),
        Phrase::Of,
        Phrase::Month(local.month()),
    ]
}

/// "23 minutes in" (to the nearest minute, at least one), or from 100
/// minutes "2 hours in" (to the nearest hour).
pub fn spoken_time_in(at: std::time::Duration) -> Vec<Phrase> {
    let minutes = ((at.as_secs() + 30) / 60).max(1) as u32;
    if minutes < 100 {
        let mut words = number(minutes);
        words.push(Phrase::MinutesIn(minutes != 1));
        words
    } else {
        let hours = (minutes + 30) / 60;
        let mut words = number(hours);
        words.push(Phrase::HoursIn(hours != 1));
        words
    }
}

/// 1–99 as the prompts say it: "twenty" "three" for 23.
fn number(n: u32) -> Vec<Phrase> {
    match n {
        0..=19 => vec![Phrase::Number(n.max(1))],
        _ if n.is_multiple_of(10) => vec![Phrase::Number(n)],
        _ => vec![Phrase::Number(n - n % 10), Phrase::Number(n % 10)],
    }
}

/// One offered service and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct MenuItem {
    pub digit: u8,
    pub service: Service,
}

/// The menu as answered at one moment: fixed for the whole call, so the
/// key pressed plays the service that was announced.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub church_name: Option<Spoken>,
    pub items: Vec<MenuItem>,
    /// Services newer than the first item that are not offered because
    /// their audio cannot be played: a caller who waits for "the latest"
    /// is told it is not this one.
    pub newer_unplayable: Vec<Service>,
    timezone: Tz,
}

impl Menu {
    /// The newest services whose time has come, nine at most, key 1 newest.
    pub fn at(schedule: &Schedule, now: DateTime<Utc>, timezone: Tz) -> Menu {
        Menu::of_playable(schedule, now, timezone, |_| true)
    }

    /// As [`Menu::at`], leaving out the services `playable` says cannot be
    /// played: the keys go to the newest nine that can.
    pub fn of_playable(
        schedule: &Schedule,
        now: DateTime<Utc>,
        timezone: Tz,
        playable: impl Fn(&Service) -> bool,
    ) -> Menu {
        let available = schedule.available(now);
        let newer_unplayable = available
            .iter()
            .take_while(|service| !playable(service))
            .map(|service| (*service).clone())
            .collect();
        let items = available
            .into_iter()
            .filter(|service| playable(service))
            .take(MAX_ITEMS)
            .zip(1u8..)
            .map(|(service, digit)| MenuItem {
                digit,
                service: service.clone(),
            })
            .collect();
        Menu {
            church_name: Some(schedule.church_name.clone())
                .filter(|n| !n.is_empty())
                .map(|text| Spoken {
                    text,
                    audio: schedule.church_name_audio.clone(),
                }),
            items,
            newer_unplayable,
            timezone,
        }
    }

    /// "Welcome back. To carry on with Choral Evensong from where you
    /// stopped, about 23 minutes in, press 1. Or stay on the line for the
    /// menu." (a service without a title: "the service from" its date).
    pub fn resume_offer(&self, service: &Service, at: std::time::Duration) -> Vec<Vec<Phrase>> {
        let mut offer = vec![Phrase::ToCarryOnWith];
        match &service.title {
            Some(title) => offer.push(Phrase::Title(Spoken {
                text: title.clone(),
                audio: service.title_audio.clone(),
            })),
            None => {
                offer.push(Phrase::TheServiceFrom);
                offer.extend(spoken_date(service, self.timezone));
            }
        }
        offer.push(Phrase::FromWhereYouStoppedAbout);
        offer.extend(spoken_time_in(at));
        offer.extend([Phrase::PressAfter, Phrase::Digit(1)]);
        vec![
            vec![Phrase::WelcomeBack],
            offer,
            vec![Phrase::OrStayForTheMenu],
        ]
    }

    /// "We can't play that service just now, so here is the service from
    /// Sunday the 1st of November."
    pub fn instead_sentence(&self, service: &Service) -> Vec<Phrase> {
        let mut sentence = vec![Phrase::CannotPlayHereIs];
        sentence.extend(spoken_date(service, self.timezone));
        sentence
    }

    /// The service a key chooses, if it is on the menu.
    pub fn choose(&self, digit: u8) -> Option<&Service> {
        self.items
            .iter()
            .find(|item| item.digit == digit)
            .map(|item| &item.service)
    }

    /// "Thanks for calling St Mary's Church, Whitkirk."
    pub fn greeting(&self) -> Vec<Phrase> {
        let mut sentence = vec![Phrase::ThanksForCalling];
        if let Some(name) = &self.church_name {
            sentence.push(Phrase::ChurchName(name.clone()));
        }
        sentence
    }

    /// The menu's sentences, in the order they are spoken.
    pub fn sentences(&self) -> Vec<Vec<Phrase>> {
        let mut sentences = vec![vec![Phrase::StayOnTheLine]];
        for item in &self.items {
            let date = spoken_date(&item.service, self.timezone);
            let sentence = match &item.service.title {
                Some(title) => {
                    let title = Spoken {
                        text: title.clone(),
                        audio: item.service.title_audio.clone(),
                    };
                    let mut s = vec![
                        Phrase::Press,
                        Phrase::Digit(item.digit),
                        Phrase::ForTheServiceFrom,
                        Phrase::Title(title),
                    ];
                    s.extend(date);
                    s
                }
                None => {
                    let mut s = vec![Phrase::For];
                    s.extend(date);
                    s.extend([Phrase::PressAfter, Phrase::Digit(item.digit)]);
                    s
                }
            };
            sentences.push(sentence);
        }
        sentences.push(vec![Phrase::StarReturns]);
        sentences
    }

    /// What a caller hears before a service, as text: the menu, or, with
    /// one service and `[line] skip_single_menu`, the greeting alone (the
    /// call flow plays that service straight after it). Used by
    /// `dial-a-service menu` and the status page alike.
    pub fn heard_text(&self, skip_single_menu: bool) -> String {
        match self.items.as_slice() {
            [only] if skip_single_menu => {
                let name = only.service.title.clone().unwrap_or_else(|| {
                    crate::source::redact_if_url(&only.service.file).into_owned()
                });
                format!(
                    "{}\n(The only service, {name}, plays straight after the greeting.)",
                    sentence_text(&self.greeting())
                )
            }
            _ => self.text(),
        }
    }

    /// Everything a caller hears before choosing, as text.
    pub fn text(&self) -> String {
        let mut lines = vec![sentence_text(&self.greeting())];
        lines.extend(self.sentences().iter().map(|s| sentence_text(s)));
        lines.join("\n")
    }
}

/// A sentence as it reads: commas after a title and before "press", a full stop at the end.
pub fn sentence_text(sentence: &[Phrase]) -> String {
    let mut out = String::new();
    for (i, phrase) in sentence.iter().enumerate() {
        if i > 0 {
            out.push_str(if comma_before(sentence, i) { ", " } else { " " });
        }
        out.push_str(&phrase.text());
    }
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Whether a comma (in text; a longer pause in audio) comes before
/// `sentence[i]`: after a title or a date, unless the key follows.
pub fn comma_before(sentence: &[Phrase], i: usize) -> bool {
    i > 0
        && matches!(sentence[i - 1], Phrase::Title(_) | Phrase::Month(_))
        && !matches!(sentence.get(i), Some(Phrase::Digit(_)))
}

#[cfg(test)]
mod tests;
