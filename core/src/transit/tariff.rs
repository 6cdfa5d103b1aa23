//! Hanoi bus fares and pass prices, as data with an effective date (integer VND).

use super::{Category, Product};

/// One tariff: the prices in force from a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    /// First day in force, `YYYY-MM-DD`.
    pub effective_from: &'static str,
    /// Trip fares by distance: (distance below which it applies, in km; fare in VND).
    pub trip_fares: &'static [(u32, u64)],
    /// Fare for trips at or above the last band.
    pub longest_trip_fare: u64,
    /// Monthly pass prices: (category, one route, all routes).
    pub monthly: &'static [(Category, u64, u64)],
    /// Day pass prices: (category, price).
    pub day_pass: &'static [(Category, u64)],
}

/// The tariff in force since 1 November 2024.
pub const HANOI_2024: Tariff = Tariff {
    effective_from: "2024-11-01",
    trip_fares: &[(15, 8_000), (25, 10_000), (30, 12_000), (40, 15_000)],
    longest_trip_fare: 20_000,
    monthly: &[
        (Category::Standard, 140_000, 280_000),
        (Category::Priority, 70_000, 140_000),
        (Category::Group, 100_000, 200_000),
    ],
    // Unconfirmed: 30,000 VND is metro line 2A's 2021 pilot price for a day on that line. No
    // network-wide day pass price is published; the operator replaces this figure.
    day_pass: &[(Category::Standard, 30_000)],
};

impl Tariff {
    /// The fare of one trip of `route_length_km` (the route's length sets the fare band).
    pub fn trip_fare(&self, route_length_km: u32) -> u64 {
        self.trip_fares
            .iter()
            .find(|(below, _)| route_length_km < *below)
            .map(|(_, fare)| *fare)
            .unwrap_or(self.longest_trip_fare)
    }

    /// The price of a product for a category, or `None` if it is not sold to them. Free riders
    /// pay 0 for a free pass.
    pub fn price(&self, product: Product, category: Category) -> Option<u64> {
        match product {
            Product::FreePass => category.rides_free().then_some(0),
            Product::DayPass => self
                .day_pass
                .iter()
                .find(|(c, _)| *c == category)
                .map(|(_, price)| *price),
            Product::PayAsYouGo => (!category.rides_free()).then_some(0),
            Product::MonthlySingleRoute | Product::MonthlyAllRoutes => {
                let (_, one, all) = self.monthly.iter().find(|(c, _, _)| *c == category)?;
                Some(if product == Product::MonthlySingleRoute {
                    *one
                } else {
                    *all
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fares_and_prices() {
        let t = HANOI_2024;
        assert_eq!(t.trip_fare(0), 8_000);
        assert_eq!(t.trip_fare(14), 8_000);
        assert_eq!(t.trip_fare(15), 10_000);
        assert_eq!(t.trip_fare(29), 12_000);
        assert_eq!(t.trip_fare(39), 15_000);
        assert_eq!(t.trip_fare(40), 20_000);
        assert_eq!(
            t.price(Product::MonthlySingleRoute, Category::Standard),
            Some(140_000)
        );
        assert_eq!(
            t.price(Product::MonthlyAllRoutes, Category::Priority),
            Some(140_000)
        );
        assert_eq!(
            t.price(Product::MonthlyAllRoutes, Category::Group),
            Some(200_000)
        );
        assert_eq!(t.price(Product::FreePass, Category::Elderly), Some(0));
        assert_eq!(t.price(Product::FreePass, Category::Standard), None);
        assert_eq!(t.price(Product::MonthlySingleRoute, Category::Child), None);
        assert_eq!(t.price(Product::DayPass, Category::Standard), Some(30_000));
        assert_eq!(t.price(Product::DayPass, Category::Elderly), None);
    }
}
