//! Time-of-use electricity prices.
//!
//! A cluster has one daily schedule: each hour of the day (China Standard Time, UTC+8) belongs to
//! a period (valley, flat, peak, sharp, deep valley) whose price is the flat price times the
//! period's multiplier. Provinces publish seasonal variants; the data file keeps the schedule that
//! covers most months and names them, which keeps the price periodic in one day. That periodicity
//! is what lets the lower bound in the simulator search start times exactly (see `sim::bound`).

use crate::network::{Invalid, TariffSpec};

/// Seconds east of UTC for the hour-of-day of every tariff (China Standard Time).
pub const CST_OFFSET_S: i64 = 8 * 3600;
pub const DAY_S: i64 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Deep,
    Valley,
    Flat,
    Peak,
    Sharp,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Deep => "deep_valley",
            Period::Valley => "valley",
            Period::Flat => "flat",
            Period::Peak => "peak",
            Period::Sharp => "sharp",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tariff {
    periods: [Period; 24],
    /// CNY per kWh for each hour of the day.
    hourly: [f64; 24],
    /// `cumulative[h]`: CNY per kW drawn from 00:00 to `h`:00; `cumulative[24]` is a whole day.
    cumulative: [f64; 25],
    /// The lowest hourly price, a floor under any run's cost per kWh.
    min_price: f64,
}

impl Tariff {
    pub fn from_spec(spec: &TariffSpec) -> Result<Self, Invalid> {
        let check = |field: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(v)
            } else {
                Err(Invalid::new(field, format!("must be between {lo} and {hi}, got {v}")))
            }
        };
        // Every figure carries its source, here as in the rest of the network file.
        for (field, v) in
            [("flat_source", &spec.flat_source), ("multiplier_source", &spec.multiplier_source), ("hours_source", &spec.hours_source)]
        {
            if v.trim().is_empty() {
                return Err(Invalid::new(field, "must not be empty"));
            }
        }
        let flat = check("flat_cny_per_kwh", spec.flat_cny_per_kwh, 0.0, 10.0)?;
        let peak = check("peak_multiplier", spec.peak_multiplier, 1.0, 5.0)?;
        let valley = check("valley_multiplier", spec.valley_multiplier, 0.0, 1.0)?;
        let sharp = spec.sharp_multiplier.map(|v| check("sharp_multiplier", v, 1.0, 6.0)).transpose()?;
        let deep = spec.deep_multiplier.map(|v| check("deep_multiplier", v, 0.0, 1.0)).transpose()?;
        let letters: Vec<char> = spec.hours.chars().collect();
        if letters.len() != 24 {
            return Err(Invalid::new("hours", format!("needs 24 letters (one per hour), got {}", letters.len())));
        }
        let mut periods = [Period::Flat; 24];
        let mut hourly = [0.0; 24];
        for (h, letter) in letters.iter().enumerate() {
            let (period, mult) = match letter {
                'V' => (Period::Valley, valley),
                'F' => (Period::Flat, 1.0),
                'P' => (Period::Peak, peak),
                'S' => (
                    Period::Sharp,
                    sharp.ok_or_else(|| Invalid::new("hours", format!("hour {h} is sharp (S) but sharp_multiplier is not set")))?,
                ),
                'D' => (
                    Period::Deep,
                    deep.ok_or_else(|| Invalid::new("hours", format!("hour {h} is deep valley (D) but deep_multiplier is not set")))?,
                ),
                other => return Err(Invalid::new("hours", format!("hour {h}: {other:?} is not one of V F P S D"))),
            };
            periods[h] = period;
            hourly[h] = flat * mult;
        }
        Ok(Self::from_hourly(periods, hourly))
    }

    fn from_hourly(periods: [Period; 24], hourly: [f64; 24]) -> Self {
        let mut cumulative = [0.0; 25];
        for h in 0..24 {
            cumulative[h + 1] = cumulative[h] + hourly[h];
        }
        let min_price = hourly.iter().copied().fold(f64::INFINITY, f64::min);
        Self { periods, hourly, cumulative, min_price }
    }

    /// A flat price at every hour (tests and simple networks).
    pub fn constant(cny_per_kwh: f64) -> Self {
        Self::from_hourly([Period::Flat; 24], [cny_per_kwh; 24])
    }

    fn hour_of_day(t_s: i64) -> usize {
        ((t_s + CST_OFFSET_S).rem_euclid(DAY_S) / 3600) as usize
    }

    pub fn period_at(&self, t_s: i64) -> Period {
        self.periods[Self::hour_of_day(t_s)]
    }

    pub fn price_at(&self, t_s: i64) -> f64 {
        self.hourly[Self::hour_of_day(t_s)]
    }

    /// The lowest price of any hour, CNY per kWh.
    pub fn min_price(&self) -> f64 {
        self.min_price
    }

    pub fn hourly(&self) -> &[f64; 24] {
        &self.hourly
    }

    pub fn daily_mean(&self) -> f64 {
        self.cumulative[24] / 24.0
    }

    /// CNY paid per kW drawn from the start of the local day to `s` seconds into it
    /// (`0 <= s`; a cast truncates, which is the floor for non-negative numbers and much cheaper
    /// than calling it, and this runs in every placement and every bound).
    fn day_prefix(&self, s: f64) -> f64 {
        let h = ((s / 3600.0) as usize).min(23);
        self.cumulative[h] + self.hourly[h] * (s - h as f64 * 3600.0) / 3600.0
    }

    /// [`Tariff::cost_per_kw`] for a start `offset_s` into the local day (`0 <= offset_s < DAY_S`).
    fn cost_from_offset(&self, offset_s: f64, duration_s: f64) -> f64 {
        let day = DAY_S as f64;
        let end = offset_s + duration_s;
        let whole_days = ((end / day) as u64) as f64;
        whole_days * self.cumulative[24] + self.day_prefix(end - whole_days * day) - self.day_prefix(offset_s)
    }

    /// CNY paid for drawing 1 kW from `start_s` for `duration_s` seconds: ∫ price dt, in O(1).
    pub fn cost_per_kw(&self, start_s: f64, duration_s: f64) -> f64 {
        if duration_s <= 0.0 {
            return 0.0;
        }
        let offset = (start_s + CST_OFFSET_S as f64).rem_euclid(DAY_S as f64);
        self.cost_from_offset(offset, duration_s)
    }

    /// The cheapest start at or after `earliest_s`, at most `max_delay_s` later: the delay and
    /// its cost, `power_kw` × [`Tariff::cost_per_kw`] plus `delay_cny_per_s` for each second of
    /// delay beyond the first `free_delay_s` (a deadline's slack, which the tenant gave away).
    ///
    /// The cost is piecewise linear in the delay, with breaks where the start or the end
    /// crosses an hour and where the free delay ends, so the minimum is at one of those points.
    /// Prices repeat every day, so within the free delay only the first day's breaks can win,
    /// and past it only the next day's (a day later costs the same energy and more delay).
    pub fn cheapest_start(
        &self,
        earliest_s: f64,
        duration_s: f64,
        power_kw: f64,
        delay_cny_per_s: f64,
        free_delay_s: f64,
        max_delay_s: f64,
    ) -> (f64, f64) {
        let day = DAY_S as f64;
        let free = free_delay_s.max(0.0);
        let max = max_delay_s.max(0.0);
        // Every candidate is `delay` after one start, so the day offset is found once and the
        // rest is arithmetic; the remainder by a whole number of days needs no `rem_euclid`.
        let offset0 = (earliest_s + CST_OFFSET_S as f64).rem_euclid(day);
        let duration = duration_s.max(0.0);
        let cost = |delay: f64| {
            let off = offset0 + delay;
            let off = off - ((off / day) as u64) as f64 * day;
            power_kw * self.cost_from_offset(off, duration) + delay_cny_per_s * (delay - free).max(0.0)
        };
        let mut best = (0.0, cost(0.0));
        // No start costs less energy than the cheapest hour throughout, so a delay whose charge
        // alone exceeds what starting now costs above that floor cannot win: stop the search
        // there. For work whose time is dear this leaves a few minutes to search, not a day.
        let floor = power_kw * self.min_price * duration / 3600.0;
        let max = if delay_cny_per_s > 0.0 { max.min(free + (best.1 - floor).max(0.0) / delay_cny_per_s) } else { max };
        // Of equal costs the earliest start wins: it finishes sooner and leaves more slack.
        let mut consider = |delay: f64| {
            let v = cost(delay);
            let tie = (v - best.1).abs() <= 1e-12 * best.1.abs().max(1.0);
            if (v < best.1 && !tie) || (tie && delay < best.0) {
                best = (delay, v);
            }
        };
        if free > 0.0 && free <= max {
            consider(free);
        }
        let firsts = [3600.0 - offset0.rem_euclid(3600.0), 3600.0 - (offset0 + duration).rem_euclid(3600.0)];
        let first_day = day.min(max);
        for (lo, hi) in [(0.0, first_day), (free.max(first_day), (free + day).min(max))] {
            for first in firsts {
                let k0 = ((lo - first) / 3600.0).ceil().max(0.0);
                let mut delay = first + k0 * 3600.0;
                while delay < hi {
                    consider(delay);
                    delay += 3600.0;
                }
            }
        }
        best
    }

    /// The least cost of [`Tariff::cheapest_start`] with no cap on the delay.
    pub fn min_cost_per_kw_with_delay(
        &self,
        earliest_s: f64,
        duration_s: f64,
        power_kw: f64,
        delay_cny_per_s: f64,
        free_delay_s: f64,
    ) -> f64 {
        self.cheapest_start(earliest_s, duration_s, power_kw, delay_cny_per_s, free_delay_s, f64::INFINITY).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hours: &str) -> TariffSpec {
        TariffSpec {
            flat_cny_per_kwh: 1.0,
            flat_source: "test".into(),
            peak_multiplier: 2.0,
            valley_multiplier: 0.5,
            sharp_multiplier: None,
            deep_multiplier: None,
            multiplier_source: "test".into(),
            hours: hours.into(),
            hours_source: "test".into(),
        }
    }

    /// Midnight CST on 2025-01-01, as a Unix time.
    const MIDNIGHT: f64 = 1_735_660_800.0;

    #[test]
    fn integral_matches_hour_by_hour_sum() {
        let t = Tariff::from_spec(&spec("VVVVVVVVFFPPFFFFPPPPFFFF")).unwrap();
        assert_eq!(t.price_at(MIDNIGHT as i64), 0.5);
        assert_eq!(t.price_at(MIDNIGHT as i64 + 10 * 3600), 2.0);
        // 07:30 to 10:30: half an hour of valley, two flat hours, half an hour of peak.
        let got = t.cost_per_kw(MIDNIGHT + 7.5 * 3600.0, 3.0 * 3600.0);
        assert!((got - (0.25 + 2.0 + 1.0)).abs() < 1e-9, "{got}");
        // Three whole days cost three daily totals, whatever the start.
        let day = t.cost_per_kw(MIDNIGHT, 86_400.0);
        let got = t.cost_per_kw(MIDNIGHT + 5_000.0, 3.0 * 86_400.0);
        assert!((got - 3.0 * day).abs() < 1e-6);
    }

    #[test]
    fn min_with_delay_finds_the_valley_and_prices_the_wait() {
        let t = Tariff::from_spec(&spec("VVVVVVVVFFPPFFFFPPPPFFFF")).unwrap();
        // A one-hour job arriving at 10:00 (peak): waiting to 00:00 costs 14 h of delay.
        let start = MIDNIGHT + 10.0 * 3600.0;
        let free_wait = t.min_cost_per_kw_with_delay(start, 3600.0, 1.0, 0.0, 0.0);
        assert!((free_wait - 0.5).abs() < 1e-9, "{free_wait}");
        let costly_wait = t.min_cost_per_kw_with_delay(start, 3600.0, 1.0, 1.0, 0.0);
        assert!((costly_wait - 2.0).abs() < 1e-9, "{costly_wait}");
    }

    #[test]
    fn free_delay_reaches_the_valley_and_a_cap_stops_short_of_it() {
        let t = Tariff::from_spec(&spec("VVVVVVVVFFPPFFFFPPPPFFFF")).unwrap();
        // A one-hour job at 10:00 with 14 h of slack starts at midnight for nothing extra.
        let start = MIDNIGHT + 10.0 * 3600.0;
        let (delay, cost) = t.cheapest_start(start, 3600.0, 1.0, 1.0, 14.0 * 3600.0, f64::INFINITY);
        assert!((delay - 14.0 * 3600.0).abs() < 1e-6 && (cost - 0.5).abs() < 1e-9, "{delay} {cost}");
        // Capped at 3 h, the best is 12:00, the first flat hour after the peak.
        let (delay, cost) = t.cheapest_start(start, 3600.0, 1.0, 1.0, 14.0 * 3600.0, 3.0 * 3600.0);
        assert!((delay - 2.0 * 3600.0).abs() < 1e-6 && (cost - 1.0).abs() < 1e-9, "{delay} {cost}");
        // With 10 h free and an hour past it worth 1, midnight (0.5 + 4 charged hours) loses to
        // the flat hour at 12:00 (1.0).
        let (_, cost) = t.cheapest_start(start, 3600.0, 1.0, 1.0 / 3600.0, 10.0 * 3600.0, f64::INFINITY);
        assert!((cost - 1.0).abs() < 1e-9, "{cost}");
        // Brute force over minute starts agrees whatever the slack.
        for free_h in [0.0, 3.5, 13.0, 30.0] {
            let free = free_h * 3600.0;
            let (_, got) = t.cheapest_start(start + 17.0, 5400.0, 2.0, 0.001, free, f64::INFINITY);
            let brute = (0..3 * 24 * 60 + 2000)
                .map(|m| f64::from(m) * 60.0)
                .map(|d| 2.0 * t.cost_per_kw(start + 17.0 + d, 5400.0) + 0.001 * (d - free).max(0.0))
                .fold(f64::INFINITY, f64::min);
            assert!(got <= brute + 1e-9, "free {free_h} h: {got} > {brute}");
        }
    }

    #[test]
    fn bad_hours_name_the_reason() {
        let e = Tariff::from_spec(&spec("VVV")).unwrap_err();
        assert_eq!(e.field, "hours");
        let e = Tariff::from_spec(&spec("VVVVVVVVFFPPFFFFPPPPFFFS")).unwrap_err();
        assert!(e.reason.contains("sharp_multiplier"), "{e}");
    }
}
