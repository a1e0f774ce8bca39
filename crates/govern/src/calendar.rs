//! China's working days, for the filing rules' deadlines ("within 10 working days").
//!
//! A working day is a weekday that is not a public holiday, or a weekend day the State Council
//! makes a working day (调休). The built-in calendar (`data/cn-workdays.toml`, with its source)
//! knows the years up to its `through`; an operator adds later years from a file of the same
//! format (`govern.holidays_file`). A year nobody gave counts weekends only, and
//! [`Calendar::knows`] says so, so a deadline in such a year can be shown as provisional.
//!
//! Dates are civil dates in China Standard Time (UTC+8, no daylight saving), where the rules
//! apply: an instant is mapped to its date there, and a deadline day ends at its midnight there.

use std::collections::BTreeSet;

use serde::Deserialize;
use time::{Date, Duration, Weekday};

use crate::GovernError;

const BUILTIN: &str = include_str!("../data/cn-workdays.toml");
/// China Standard Time's offset from UTC.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Most working days a deadline may count (a year and a half).
pub const MAX_WORKDAYS: u32 = 400;

/// The file format, built-in and operator's alike.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    through: i32,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    workdays: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Calendar {
    holidays: BTreeSet<Date>,
    workdays: BTreeSet<Date>,
    through: i32,
}

fn date_field(field: &'static str, s: &str) -> Result<Date, GovernError> {
    Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
        .map_err(|e| GovernError::Invalid { field, reason: format!("{s:?} is not a date as YYYY-MM-DD: {e}") })
}

impl Calendar {
    /// The built-in calendar.
    pub fn builtin() -> Result<Self, GovernError> {
        Self::parse(BUILTIN)
    }

    /// Reads a calendar file (the format of `data/cn-workdays.toml`).
    pub fn parse(text: &str) -> Result<Self, GovernError> {
        let f: File = toml::from_str(text).map_err(|e| GovernError::Invalid { field: "calendar", reason: e.to_string() })?;
        let mut c = Calendar { holidays: BTreeSet::new(), workdays: BTreeSet::new(), through: f.through };
        for s in &f.holidays {
            c.holidays.insert(date_field("holidays", s)?);
        }
        for s in &f.workdays {
            c.workdays.insert(date_field("workdays", s)?);
        }
        c.check()?;
        Ok(c)
    }

    /// Adds an operator's calendar (later years, or corrections) to this one.
    pub fn merge(mut self, other: Calendar) -> Result<Self, GovernError> {
        self.holidays.extend(other.holidays);
        self.workdays.extend(other.workdays);
        self.through = self.through.max(other.through);
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), GovernError> {
        if let Some(d) = self.holidays.intersection(&self.workdays).next() {
            return Err(GovernError::Invalid {
                field: "calendar",
                reason: format!("{d} is listed both as a holiday and as a working day"),
            });
        }
        Ok(())
    }

    /// Whether the calendar knows `date`'s holidays (its year is at most `through`).
    pub fn knows(&self, date: Date) -> bool {
        date.year() <= self.through
    }

    pub fn is_workday(&self, date: Date) -> bool {
        let weekend = matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday);
        if weekend { self.workdays.contains(&date) } else { !self.holidays.contains(&date) }
    }

    /// The last day of a period of `n` working days that starts the day after `from`: the day
    /// of the act does not count, as in Chinese law's computation of periods.
    pub fn add_workdays(&self, from: Date, n: u32) -> Date {
        let mut d = from;
        let mut left = n.min(MAX_WORKDAYS);
        while left > 0 {
            let Some(next) = d.next_day() else { return d };
            d = next;
            if self.is_workday(d) {
                left -= 1;
            }
        }
        d
    }
}

/// The date in China at instant `ms` (Unix milliseconds).
pub fn china_date(ms: i64) -> Date {
    let days = ms.saturating_add(CST_OFFSET_MS).div_euclid(DAY_MS);
    let epoch = Date::from_ordinal_date(1970, 1).unwrap_or(Date::MIN);
    epoch.checked_add(Duration::days(days)).unwrap_or(if days < 0 { Date::MIN } else { Date::MAX })
}

/// The instant `date` ends in China (its midnight, in Unix milliseconds): a deadline on `date`
/// is missed from this instant on.
pub fn end_of_day_ms(date: Date) -> i64 {
    let epoch = Date::from_ordinal_date(1970, 1).unwrap_or(Date::MIN);
    let days = (date - epoch).whole_days();
    (days + 1) * DAY_MS - CST_OFFSET_MS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn d(s: &str) -> Date {
        date_field("test", s).unwrap()
    }

    #[test]
    fn the_builtin_calendar_knows_holidays_and_adjusted_working_days() {
        let c = Calendar::builtin().unwrap();
        assert!(!c.is_workday(d("2026-10-01")), "National Day");
        assert!(c.is_workday(d("2026-10-10")), "a Saturday worked for National Day");
        assert!(c.is_workday(d("2026-02-14")), "a Saturday worked for the Spring Festival");
        assert!(!c.is_workday(d("2026-02-23")), "a Monday of the Spring Festival");
        assert!(!c.is_workday(d("2026-12-05")), "an ordinary Saturday");
        assert!(c.is_workday(d("2026-12-04")), "an ordinary Friday");
        assert!(c.knows(d("2026-12-31")) && !c.knows(d("2027-01-04")));
    }

    #[test]
    fn ten_working_days_skip_weekends_and_holidays_and_count_adjusted_days() {
        let c = Calendar::builtin().unwrap();
        // Wednesday 2 December 2026: ten working days are Thu 3 … Wed 16 December.
        assert_eq!(c.add_workdays(d("2026-12-02"), 10), d("2026-12-16"));
        // Thursday 24 September 2026: Fri 25 is Mid-Autumn, 1–7 October are off, Sat 10 October
        // is worked: Mon 28, Tue 29, Wed 30 Sep, Thu 8, Fri 9, Sat 10, Mon 12 … Thu 15 October.
        // (chinesecalendar 1.11.0's `is_workday`, counted the same way, gives the same days.)
        assert_eq!(c.add_workdays(d("2026-09-24"), 10), d("2026-10-15"));
        // Friday 13 February 2026: Sat 14 is worked, then the Spring Festival runs to Mon 23.
        assert_eq!(c.add_workdays(d("2026-02-13"), 1), d("2026-02-14"));
        assert_eq!(c.add_workdays(d("2026-02-13"), 2), d("2026-02-24"));
        assert_eq!(c.add_workdays(d("2026-02-13"), 0), d("2026-02-13"));
    }

    #[test]
    fn an_operator_file_adds_years_and_contradictions_are_refused() {
        let c = Calendar::builtin().unwrap();
        let more = Calendar::parse("through = 2027\nholidays = [\"2027-01-01\"]\n").unwrap();
        let c = c.merge(more).unwrap();
        assert!(c.knows(d("2027-06-01")) && !c.is_workday(d("2027-01-01")));
        let clash = Calendar::parse("through = 2026\nworkdays = [\"2026-10-01\"]\n").unwrap();
        assert!(Calendar::builtin().unwrap().merge(clash).is_err());
        assert!(Calendar::parse("through = 2026\nholidays = [\"1 Oct\"]\n").is_err());
    }

    #[test]
    fn instants_map_to_china_dates_and_a_day_ends_at_its_midnight_there() {
        // 2026-12-01T16:00:00Z is midnight of 2 December in China.
        let ms = 1_796_140_800_000;
        assert_eq!(china_date(ms), d("2026-12-02"));
        assert_eq!(china_date(ms - 1), d("2026-12-01"));
        assert_eq!(end_of_day_ms(d("2026-12-01")), ms);
    }
}
