//! Pay-as-you-go fares from uploaded taps, with daily and monthly caps.

use std::collections::HashMap;

use thudo_core::transit::tariff::{Tariff, HANOI_2024};
use thudo_core::transit::{Category, Product};

/// How taps become charges. Caps are operator data: the monthly cap is the standard all-routes
/// pass (nobody pays more than a pass would have cost); the daily cap is an *assumption* (no
/// published rule), set here to three 10,000 VND trips.
#[derive(Debug, Clone)]
pub struct FarePolicy {
    /// Trip fares and pass prices.
    pub tariff: Tariff,
    /// Route lengths in km (the fare band of a trip on it).
    pub route_km: HashMap<u16, u32>,
    /// Length assumed for routes not in the table.
    pub default_route_km: u32,
    /// Most charged per card per day, VND.
    pub daily_cap_vnd: u64,
    /// Most charged per card per month, VND.
    pub monthly_cap_vnd: u64,
    /// Hanoi's offset from UTC, seconds (days and months are local).
    pub utc_offset_secs: i64,
}

impl Default for FarePolicy {
    fn default() -> Self {
        let tariff = HANOI_2024;
        let monthly_cap_vnd = tariff
            .price(Product::MonthlyAllRoutes, Category::Standard)
            .unwrap_or(280_000);
        FarePolicy {
            tariff,
            route_km: HashMap::new(),
            default_route_km: 10,
            daily_cap_vnd: 30_000,
            monthly_cap_vnd,
            utc_offset_secs: 7 * 3600,
        }
    }
}

impl FarePolicy {
    /// The local day `YYYY-MM-DD` and month `YYYY-MM` of a unix time.
    pub fn local_day_and_month(&self, unix: u64) -> (String, String) {
        let secs = i64::try_from(unix)
            .unwrap_or(i64::MAX)
            .saturating_add(self.utc_offset_secs);
        let local = chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .naive_utc();
        (
            local.format("%Y-%m-%d").to_string(),
            local.format("%Y-%m").to_string(),
        )
    }

    /// The charge for one trip on `route`, given what the card already paid that day and month.
    pub fn charge(&self, route: u16, paid_today: u64, paid_this_month: u64) -> u64 {
        let km = self
            .route_km
            .get(&route)
            .copied()
            .unwrap_or(self.default_route_km);
        self.tariff
            .trip_fare(km)
            .min(self.daily_cap_vnd.saturating_sub(paid_today))
            .min(self.monthly_cap_vnd.saturating_sub(paid_this_month))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_limit_the_day_and_the_month() {
        let mut p = FarePolicy::default();
        p.route_km.insert(32, 27);
        assert_eq!(p.charge(1, 0, 0), 8_000);
        assert_eq!(p.charge(32, 0, 0), 12_000);
        assert_eq!(p.charge(32, 24_000, 24_000), 6_000, "daily cap");
        assert_eq!(p.charge(32, 30_000, 30_000), 0);
        assert_eq!(p.charge(32, 0, 275_000), 5_000, "monthly cap");
        assert_eq!(p.charge(32, 0, 280_000), 0);
        // 23:30 UTC is 06:30 the next day in Hanoi.
        assert_eq!(
            p.local_day_and_month(1_767_223_800), // 2025-12-31T23:30:00Z
            ("2026-01-01".to_owned(), "2026-01".to_owned())
        );
    }
}
