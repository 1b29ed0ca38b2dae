use super::*;
use std::time::SystemTime;

/// What `httpdate` makes of `text`, the behaviour [`parse`] must keep.
fn reference(text: &str) -> Option<Duration> {
    httpdate::parse_http_date(text)
        .ok()
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

#[test]
fn every_day_from_1970_to_2200_reads_as_httpdate_formats_it() {
    for day in 0..(230 * 366) {
        // A different time of day for each day, so every hour, minute and second occurs.
        let secs = day * 86_400 + (day * 7_919) % 86_400;
        let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(
            imf_fixdate(text.as_bytes()),
            Some(Duration::from_secs(secs)),
            "{text}"
        );
    }
}

#[test]
fn a_wrong_weekday_or_a_day_past_the_month_is_refused_as_httpdate_refuses_it() {
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    // Every weekday name on every day of 1999 to 2001 (2000 is a leap year, 1900 and 2100 are
    // not: see the month-end cases below).
    let start = 29 * 365 + 7; // 1 January 1999
    for day in start..start + 3 * 366 {
        let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(day * 86_400));
        for name in WEEKDAYS {
            let text = format!("{name}{}", &text[3..]);
            assert_eq!(parse(&text), reference(&text), "{text}");
        }
    }
    for text in [
        "Mon, 29 Feb 2100 00:00:00 GMT",
        "Tue, 29 Feb 2000 00:00:00 GMT",
        "Thu, 31 Apr 2026 00:00:00 GMT",
        "Thu, 00 Jan 2026 00:00:00 GMT",
        "Sat, 05 Dec 2026 24:00:00 GMT",
        "Sat, 05 Dec 2026 23:60:00 GMT",
        "Sat, 05 Dec 2026 23:59:60 GMT",
        "Wed, 31 Dec 1969 23:59:59 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        assert_eq!(parse(text), reference(text), "{text}");
    }
    assert!(reference("Tue, 29 Feb 2000 00:00:00 GMT").is_some());
    assert!(parse("Mon, 29 Feb 2100 00:00:00 GMT").is_none());
}

#[test]
fn any_one_byte_changed_reads_as_httpdate_reads_it() {
    let base = "Sat, 05 Dec 2026 11:53:24 GMT";
    let mut fast = 0;
    for at in 0..base.len() {
        for b in (0x20u8..0x7f).chain([b'\t', b'\n']) {
            let mut bytes = base.as_bytes().to_vec();
            bytes[at] = b;
            let text = String::from_utf8(bytes).expect("ASCII");
            // The fast path may decline, never disagree.
            if let Some(t) = imf_fixdate(text.as_bytes()) {
                assert_eq!(Some(t), reference(&text), "{text:?}");
                fast += 1;
            }
            assert_eq!(parse(&text), reference(&text), "{text:?}");
        }
    }
    // The unchanged date and every other digit that keeps it real (a control case).
    assert!(fast > 10, "{fast}");
}

#[test]
fn the_forms_only_httpdate_reads_still_parse() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    let want = Some(Duration::from_secs(784_111_777));
    for text in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        " Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse(text), want, "{text:?}");
    }
    assert_eq!(httpdate::fmt_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    for text in ["", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC"] {
        assert_eq!(parse(text), None, "{text:?}");
    }
}
