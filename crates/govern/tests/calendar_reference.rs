//! The built-in working-day calendar against a reference: chinesecalendar (PyPI, installed by
//! `scripts/test`), day by day over every year the calendar knows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use govern::calendar::Calendar;
use time::{Date, Month};

#[test]
fn every_day_of_the_known_years_matches_chinesecalendar() {
    let script = "import chinese_calendar as cc, datetime as dt\n\
                  d = dt.date(2024, 1, 1)\n\
                  out = []\n\
                  while d.year <= 2026:\n    out.append('1' if cc.is_workday(d) else '0')\n    d += dt.timedelta(days=1)\n\
                  print(''.join(out))\n";
    let out = std::process::Command::new("python3").args(["-c", script]).output().expect("python3");
    assert!(out.status.success(), "chinesecalendar is missing (scripts/test installs it): {}", String::from_utf8_lossy(&out.stderr));
    let reference = String::from_utf8(out.stdout).unwrap();
    let reference = reference.trim();
    let cal = Calendar::builtin().unwrap();
    let mut d = Date::from_calendar_date(2024, Month::January, 1).unwrap();
    let mut days = 0;
    for want in reference.chars() {
        assert_eq!(cal.is_workday(d), want == '1', "{d}");
        assert!(cal.knows(d));
        d = d.next_day().unwrap();
        days += 1;
    }
    assert_eq!(days, 366 + 365 + 365);
}
