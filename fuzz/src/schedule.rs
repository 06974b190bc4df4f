//! What callers get from a schedule, however it was read: the services
//! available at a few moments, and the spoken menu built from them.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use dial_a_service::call::menu::{Menu, sentence_text};
use dial_a_service::source::schedule::{Schedule, is_remote, parse_datetime};

/// A few zones with and without summer time, and far from UTC.
pub fn timezone(choice: u8) -> Tz {
    const ZONES: [Tz; 5] = [
        chrono_tz::Europe::London,
        chrono_tz::UTC,
        chrono_tz::America::St_Johns,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Australia::Lord_Howe,
    ];
    ZONES[usize::from(choice) % ZONES.len()]
}

/// The menus callers hear at moments around the services, and every
/// service's own fields as the line reads them.
pub fn exercise(schedule: &Schedule, timezone: Tz) {
    let mut moments = vec![
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        Utc::now(),
    ];
    for service in &schedule.services {
        let at = service.datetime.with_timezone(&Utc);
        moments.push(at);
        moments.extend(at.checked_sub_signed(Duration::seconds(1)));
        let _ = is_remote(&service.file);
        let _ = parse_datetime(&service.file, timezone);
    }
    // Enough moments to see each menu; not one per service on a huge file.
    moments.truncate(16);
    for now in moments {
        let available = schedule.available(now);
        assert!(available.iter().all(|s| s.datetime <= now));
        assert!(
            available.windows(2).all(|w| w[0].datetime >= w[1].datetime),
            "newest first"
        );
        assert_eq!(
            schedule.latest(now).map(|s| s.datetime),
            available.first().map(|s| s.datetime)
        );
        let menu = Menu::at(schedule, now, timezone);
        assert!(menu.items.len() <= 9, "one digit per service");
        let _ = menu.text();
        for sentence in menu.sentences() {
            let _ = sentence_text(&sentence);
        }
        for digit in 0..=10 {
            let _ = menu.choose(digit);
        }
    }
}
