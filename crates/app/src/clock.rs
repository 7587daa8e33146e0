//! The time source. The system clock in production; tests set it, so that hours can pass without
//! sleeping.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Mutex<OffsetDateTime>>>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    pub fn fixed(t: OffsetDateTime) -> Self {
        Self(Some(Arc::new(Mutex::new(t))))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            None => OffsetDateTime::now_utc(),
            Some(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Sets a fixed clock's time. A system clock ignores this.
    pub fn set(&self, t: OffsetDateTime) {
        if let Some(cur) = &self.0 {
            *cur.lock().unwrap_or_else(|p| p.into_inner()) = t;
        }
    }

    pub fn advance(&self, d: time::Duration) {
        if let Some(cur) = &self.0 {
            let mut g = cur.lock().unwrap_or_else(|p| p.into_inner());
            *g += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = Clock::fixed(datetime!(2026-11-25 10:00 UTC));
        let c2 = c.clone();
        assert_eq!(c.now(), datetime!(2026-11-25 10:00 UTC));
        c2.advance(time::Duration::hours(2));
        assert_eq!(c.now(), datetime!(2026-11-25 12:00 UTC));
        c.set(datetime!(2026-01-01 0:00 UTC));
        assert_eq!(c2.now(), datetime!(2026-01-01 0:00 UTC));
        let sys = Clock::system();
        sys.set(datetime!(2000-01-01 0:00 UTC));
        assert!(sys.now().year() >= 2026);
    }
}
