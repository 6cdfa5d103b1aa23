//! Pay-as-you-go fares from uploaded taps, with daily and monthly caps.

use std::collections::HashMap;

use thudo_core::transit::metro::{Gate, MetroFares};
use thudo_core::transit::tariff::Tariff;
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
    /// Metro station-to-station fares. Caps count bus rides and metro journeys together.
    pub metro: MetroFares,
    /// How far below zero a prepaid balance may go before the card is denied, VND: validators
    /// are offline and let a rider through on the list they hold, so a balance can go below
    /// zero by the rides taken until the next list; two bus rides by default.
    pub credit_limit_vnd: u64,
    /// What follows each kind of fraud record (warning, penalty fare, denial).
    pub fraud_policy: super::fraud::FraudPolicy,
}

impl Default for FarePolicy {
    fn default() -> Self {
        let tariff = Tariff::hanoi();
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
            metro: MetroFares::hanoi(),
            credit_limit_vnd: 20_000,
            fraud_policy: super::fraud::FraudPolicy::default(),
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

    /// The price of `product` naming `route` for `category` bought at `now` (unix seconds), or
    /// `None` when it is not sold: a metro line's monthly pass, day and week tickets (naming the
    /// line's route code) from the metro table in force; everything else from the tariff. A
    /// product that must name its route and names none (or names one it must not) is not sold.
    pub fn price(&self, product: Product, category: Category, route: u16, now: u32) -> Option<u64> {
        if !self.tariff.may_name(product, route) {
            return None;
        }
        let (day, _) = self.local_day_and_month(u64::from(now));
        let line = self
            .metro
            .in_force(&day)
            .and_then(|t| Some((t, t.line(route)?)));
        match (product, line) {
            (Product::MonthlySingleRoute, Some((t, _))) => {
                t.monthly_line_pass_vnd.get(&category).copied()
            }
            // A line's tickets are sold at full price only (no category has its own).
            (Product::DayPass, Some((_, l))) => {
                l.day_ticket_vnd.filter(|_| category == Category::Standard)
            }
            (Product::WeekPass, Some((_, l))) => {
                l.week_ticket_vnd.filter(|_| category == Category::Standard)
            }
            // Day and week tickets naming a route that is no line are not sold.
            (Product::DayPass | Product::WeekPass, None) if route != 0 => None,
            _ => self.tariff.price(product, category),
        }
    }

    /// The fare of one bus trip on `route`, before caps.
    pub fn bus_fare(&self, route: u16) -> u64 {
        let km = self
            .route_km
            .get(&route)
            .copied()
            .unwrap_or(self.default_route_km);
        self.tariff.trip_fare(km)
    }

    /// The charge for one trip on `route`, given what the card already paid that day and month.
    pub fn charge(&self, route: u16, paid_today: u64, paid_this_month: u64) -> u64 {
        self.capped(self.bus_fare(route), paid_today, paid_this_month)
    }

    /// What is charged of `full_fare` given what the card already paid that day and month.
    pub fn capped(&self, full_fare: u64, paid_today: u64, paid_this_month: u64) -> u64 {
        full_fare
            .min(self.daily_cap_vnd.saturating_sub(paid_today))
            .min(self.monthly_cap_vnd.saturating_sub(paid_this_month))
    }

    /// The metro fare from `entry` to `exit` on local day `day`, and whether the table prices
    /// it (`false`: unknown stations or different lines, charged the maximum).
    pub fn metro_fare(&self, day: &str, entry: u16, exit: u16) -> (u64, bool) {
        let Some(t) = self.metro.in_force(day) else {
            return (0, false);
        };
        match t.fare(entry, exit) {
            Some(fare) => (fare, true),
            None => (t.max_fare(entry).max(t.max_fare(exit)), false),
        }
    }

    /// The maximum fare charged for a journey seen at `station` only.
    pub fn metro_max_fare(&self, day: &str, station: u16) -> u64 {
        self.metro.in_force(day).map_or(0, |t| t.max_fare(station))
    }

    /// How long a metro journey may last before its entry is charged the maximum fare.
    pub fn max_journey_secs(&self, day: &str) -> u64 {
        self.metro
            .in_force(day)
            .map_or(7_200, |t| u64::from(t.max_journey_secs))
    }

    /// The route code of `gate`'s line (what a single-route pass for the line names).
    pub fn gate_route(&self, gate: &Gate, day: &str) -> Option<u16> {
        Some(self.metro.in_force(day)?.station(gate.station)?.line.route)
    }

    /// A station's name, for the rider's trip list.
    pub fn station_name(&self, day: &str, station: u16) -> Option<String> {
        Some(
            self.metro
                .in_force(day)?
                .station(station)?
                .name()
                .to_owned(),
        )
    }
}

/// A validator's gate binding as the operator writes it: `STATION:entry` or `STATION:exit`.
pub fn parse_gate(binding: &str) -> Option<Gate> {
    binding.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_operator_prices_its_week_ticket_as_data() {
        let mut policy = FarePolicy::default();
        let now = 1_796_464_800; // 2026-12-05 in Hanoi
        assert_eq!(
            policy.price(Product::WeekPass, Category::Standard, 902, now),
            None
        );
        for tariff in &mut policy.metro.tariffs {
            for line in &mut tariff.lines {
                line.week_ticket_vnd = Some(100_000);
            }
        }
        assert_eq!(
            policy.price(Product::WeekPass, Category::Standard, 903, now),
            Some(100_000)
        );
        // Full price only; never on a bus route or naming no line.
        assert_eq!(
            policy.price(Product::WeekPass, Category::Priority, 903, now),
            None
        );
        assert_eq!(
            policy.price(Product::WeekPass, Category::Standard, 32, now),
            None
        );
        assert_eq!(
            policy.price(Product::WeekPass, Category::Standard, 0, now),
            None
        );
        // The network day pass is city policy: sold at the tariff's price while it sets one.
        assert_eq!(
            policy.price(Product::DayPass, Category::Standard, 0, now),
            Some(30_000)
        );
        policy.tariff.network_day_pass.prices.clear();
        assert_eq!(
            policy.price(Product::DayPass, Category::Standard, 0, now),
            None
        );
        assert_eq!(
            policy.price(Product::DayPass, Category::Standard, 902, now),
            Some(30_000)
        );
    }
}
