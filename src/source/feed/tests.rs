//! Feeds from `tests/fixtures/feeds/`, written by hand after real hosts' output, parsed
//! end to end.

use chrono::{DateTime, Utc};

use super::*;

const LONDON: Tz = chrono_tz::Europe::London;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/feeds")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(name: &str, base_url: Option<&str>) -> Schedule {
    parse_feed(&fixture(name), base_url, LONDON).unwrap()
}

/// (title, instant in UTC, file) of each service, in the feed's order.
fn services(schedule: &Schedule) -> Vec<(Option<&str>, String, &str)> {
    schedule
        .services
        .iter()
        .map(|s| {
            let utc = s.datetime.with_timezone(&Utc);
            (
                s.title.as_deref(),
                utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                s.file.as_str(),
            )
        })
        .collect()
}

#[test]
fn anchor_podcast_with_itunes_tags() {
    let schedule = parse(
        "anchor.xml",
        Some("https://anchor.fm/s/1a2b3c4d/podcast/rss"),
    );
    assert_eq!(schedule.church_name, "St Mary\u{2019}s Church, Whitkirk");
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    assert_eq!(
        services(&schedule),
        [
            (
                Some("Trinity 1: Sung Eucharist"),
                "2026-06-07T09:00:00Z".to_owned(),
                "https://anchor.fm/s/1a2b3c4d/podcast/play/98765432/https%3A%2F%2Fd3ctxlq1ktw2nl.cloudfront.net%2Fstaging%2F2026-5-7%2Ftrinity-1.mp3"
            ),
            (
                Some("Evensong"),
                "2026-05-31T17:00:00Z".to_owned(),
                "https://anchor.fm/s/1a2b3c4d/podcast/play/98765431/https%3A%2F%2Fd3ctxlq1ktw2nl.cloudfront.net%2Fstaging%2F2026-4-31%2Fevensong.m4a"
            ),
            (
                Some("Pentecost & Confirmation"),
                "2026-05-24T09:30:00Z".to_owned(),
                "https://anchor.fm/s/1a2b3c4d/podcast/play/98765430/pentecost.mp3"
            ),
        ]
    );
    // Kept in the parish's zone for the logs: 09:00 GMT is 10:00 BST.
    assert_eq!(
        schedule.services[0].datetime.to_rfc3339(),
        "2026-06-07T10:00:00+01:00"
    );
    for service in &schedule.services {
        assert!(is_remote(&service.file), "{}", service.file);
        assert_eq!(service.title_audio, None);
    }
    assert_eq!(schedule.church_name_audio, None);
    let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        schedule.latest(now).unwrap().title.as_deref(),
        Some("Evensong")
    );
}

#[test]
fn rfc_822_dates_with_named_zones() {
    let schedule = parse("named-zones.xml", None);
    assert_eq!(schedule.church_name, "St Example's, Anytown");
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let instants: Vec<String> = services(&schedule).into_iter().map(|s| s.1).collect();
    assert_eq!(
        instants,
        [
            "2026-01-04T10:30:00Z",
            // BST, which chrono does not know, is +0100.
            "2026-06-07T09:00:00Z",
            "2026-06-07T17:00:00Z",
            "2026-06-07T20:00:00Z",
            "2026-10-04T15:00:00Z",
        ]
    );
}

#[test]
fn loose_dates_two_digit_years_and_missing_weekdays() {
    let schedule = parse("loose-dates.xml", None);
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let read: Vec<(Option<&str>, String)> = services(&schedule)
        .into_iter()
        .map(|(title, instant, _)| (title, instant))
        .collect();
    let expected = [
        ("Two-digit year", "2026-06-07T10:00:00Z"),
        ("No weekday", "2026-06-14T09:00:00Z"),
        ("Wrong weekday", "2026-06-21T09:00:00Z"),
        // Local times are the parish's: 10:00 BST.
        ("No zone", "2026-06-28T09:00:00Z"),
        // A bare date is local midnight.
        ("Date only", "2026-07-04T23:00:00Z"),
        ("Written out", "2026-07-11T23:00:00Z"),
        ("ISO local", "2026-07-19T09:00:00Z"),
    ];
    let expected: Vec<(Option<&str>, String)> = expected
        .iter()
        .map(|(title, instant)| (Some(*title), (*instant).to_owned()))
        .collect();
    assert_eq!(read, expected);
}

#[test]
fn atom_with_enclosure_links() {
    let schedule = parse("atom.xml", Some("https://stlukes.example/feed.atom"));
    assert_eq!(schedule.church_name, "St Luke\u{2019}s & St John\u{2019}s");
    assert_eq!(
        services(&schedule),
        [
            (
                Some("Sung Eucharist"),
                // Published, not updated.
                "2026-06-07T09:00:00Z".to_owned(),
                "https://media.stlukes.example/2026/06/07/eucharist.mp3"
            ),
            (
                Some("Evensong"),
                // No published: updated. No type: audio by its extension.
                "2026-05-31T18:30:00Z".to_owned(),
                "https://media.stlukes.example/2026/05/31/evensong.ogg"
            ),
        ]
    );
    assert_eq!(
        schedule.problems,
        ["item 3 \"Notice: the church is closed for repairs\": no audio enclosure"]
    );
}

#[test]
fn relative_enclosures_resolve_against_the_feed_url() {
    let schedule = parse(
        "relative.xml",
        Some("https://holytrinity.example/podcast/feed.xml"),
    );
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let files: Vec<&str> = schedule.services.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "https://holytrinity.example/podcast/audio/2026-06-07.mp3",
            "https://holytrinity.example/media/2026-05-31.mp3",
            "https://holytrinity.example/archive/2026-05-24.mp3",
            "https://holytrinity.example/podcast/audio/2026-05-17.m4a",
        ]
    );
}

#[test]
fn relative_enclosures_without_a_feed_url_are_reported() {
    let schedule = parse("relative.xml", None);
    assert!(schedule.services.is_empty());
    assert_eq!(
        schedule.problems,
        [
            "item 1 \"Beside the feed\": enclosure \"audio/2026-06-07.mp3\" is relative and the feed's url is unknown",
            "item 2 \"From the site root\": enclosure \"media/2026-05-31.mp3\" is relative and the feed's url is unknown",
            "item 3 \"One folder up\": enclosure \"archive/2026-05-24.mp3\" is relative and the feed's url is unknown",
            "item 4 \"Media RSS, no type\": enclosure \"audio/2026-05-17.m4a\" is relative and the feed's url is unknown",
        ]
    );
}

#[test]
fn broken_items_are_skipped_and_reported() {
    let schedule = parse("broken-items.xml", None);
    assert_eq!(
        services(&schedule),
        [
            (
                Some("Trinity Sunday"),
                "2026-05-31T09:00:00Z".to_owned(),
                "https://stexample.org.uk/audio/trinity.mp3"
            ),
            (
                Some("Octet-stream"),
                "2026-06-14T09:00:00Z".to_owned(),
                "https://stexample.org.uk/audio/trinity-2.m4a?download=1"
            ),
            (
                Some("Video and audio"),
                "2026-06-28T09:00:00Z".to_owned(),
                "https://stexample.org.uk/audio/trinity-4.mp3"
            ),
            // No title: the menu says the date alone, as for data.json.
            (
                None,
                "2026-07-05T09:00:00Z".to_owned(),
                "https://stexample.org.uk/audio/untitled.mp3"
            ),
        ]
    );
    assert_eq!(
        schedule.problems,
        [
            "item 2 \"Parish newsletter\": no audio enclosure",
            "item 3 \"Trinity 1 (video)\": no audio enclosure (only video/mp4)",
            "item 4 \"Advent Sunday\": date \"Sunday morning\" is not a date",
            "item 5 \"Undated\": no date",
            "item 6 \"Trinity Sunday (again)\": a duplicate of item 1 (same enclosure)",
            "item 8 \"Not on the web\": enclosure \"ftp://stexample.org.uk/audio/trinity-3.mp3\" is not an http(s) url",
        ]
    );
}

#[test]
fn json_feed_attachments() {
    let bytes = fixture("feed.json");
    assert!(looks_like_feed(&bytes));
    let schedule = parse_feed(&bytes, Some("https://stexample.org.uk/feed.json"), LONDON).unwrap();
    assert_eq!(schedule.church_name, "St Example's (JSON Feed)");
    assert!(schedule.problems.is_empty(), "{:?}", schedule.problems);
    let files: Vec<&str> = schedule.services.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "https://stexample.org.uk/audio/2026-06-07.mp3",
            "https://stexample.org.uk/audio/2026-05-31.mp3",
        ]
    );
}

#[test]
fn not_a_feed_is_an_error() {
    let cases: [(&[u8], &str); 5] = [
        (b"", "source.feed_invalid"),
        (
            b"<html><body>Not found</body></html>",
            "source.feed_invalid",
        ),
        (
            b"<rss version=\"2.0\"><channel><title>x",
            "source.feed_invalid",
        ),
        (
            b"<rss version=\"2.0\"><channel><item><title>x</title></item></channel></rss>",
            "source.feed_untitled",
        ),
        (
            b"<rss version=\"2.0\"><channel><title> <![CDATA[<b></b>]]> </title></channel></rss>",
            "source.feed_untitled",
        ),
    ];
    for (bytes, code) in cases {
        let err = parse_feed(bytes, None, LONDON).unwrap_err();
        assert_eq!(
            err.code(),
            code,
            "{}: {err}",
            String::from_utf8_lossy(bytes)
        );
    }
    let good = fixture("anchor.xml");
    for base in [
        "feed.xml",
        "file:///srv/feed.xml",
        "ftp://example.org/feed.xml",
    ] {
        let err = parse_feed(&good, Some(base), LONDON).unwrap_err();
        assert_eq!(err.code(), "source.feed_url", "{base}");
        assert!(err.to_string().contains(base), "{err}");
    }
}

#[test]
fn hostile_bytes_never_panic() {
    let good = fixture("broken-items.xml");
    // Every truncation of a feed, and a few odd inputs: an error or a schedule, no panic.
    for end in (0..good.len()).step_by(7) {
        let _ = parse_feed(&good[..end], None, LONDON);
    }
    let odd: [&[u8]; 5] = [
        b"\xFF\xFE<\x00r\x00s\x00s\x00",
        b"<?xml version=\"1.0\" encoding=\"nonsense\"?><rss/>",
        b"<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]><rss version=\"2.0\"><channel><title>&a;</title></channel></rss>",
        b"{\"version\": \"https://jsonfeed.org/version/1\", \"title\": 3}",
        b"<rss version=\"2.0\"><channel><title>t</title><item><pubDate>99999999 Jun 2026</pubDate><enclosure url=\"https://x.example/a.mp3\" type=\"audio/mpeg\"/></item></channel></rss>",
    ];
    for bytes in odd {
        let _ = parse_feed(bytes, None, LONDON);
    }
}

#[test]
fn sniffs_feeds_from_data_json() {
    let feeds: [&[u8]; 6] = [
        b"<?xml version=\"1.0\"?><rss/>",
        b"\xEF\xBB\xBF<rss/>",
        b"\n\t  <feed xmlns=\"http://www.w3.org/2005/Atom\"/>",
        b"\xFF\xFE<\x00?\x00x\x00",
        b"\xFE\xFF\x00<\x00?",
        b"{\"version\":\"https://jsonfeed.org/version/1.1\",\"items\":[]}",
    ];
    for bytes in feeds {
        assert!(looks_like_feed(bytes), "{bytes:?}");
    }
    let not_feeds: [&[u8]; 5] = [
        b"{\"church_name\": \"St X\", \"services\": []}",
        b"\xEF\xBB\xBF  {\"church_name\": \"St X\"}",
        b"",
        b"   ",
        b"church_name = x",
    ];
    for bytes in not_feeds {
        assert!(!looks_like_feed(bytes), "{bytes:?}");
    }
    let shipped =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/data.json"))
            .unwrap();
    assert!(!looks_like_feed(&shipped));
}
