//! The one source of "now" for logic that depends on the calendar (which month is
//! closed, which day is today), so tests can fix the date instead of depending on
//! the day they happen to run.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

/// A source of the current time: the system clock in production, a fixed instant
/// in tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    /// Always the same instant.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock(Arc::new(move || at))
    }

    /// Noon (UTC) of the given day, always.
    pub fn on(day: NaiveDate) -> Clock {
        Clock::fixed(day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc())
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    /// Today's date in UTC.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_says_the_same_day_whenever_it_is_asked() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let clock = Clock::on(day);
        assert_eq!(clock.today(), day);
        assert_eq!(clock.now(), clock.now());
    }
}
