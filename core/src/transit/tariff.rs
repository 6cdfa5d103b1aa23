//! Hanoi's bus fares and pass prices, and which product rides which mode and route, as data
//! with an effective date (`hanoi-tariff.json`, integer VND). The metro's station fares and its
//! line tickets are the metro table's ([`super::metro`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Category, Product};

/// The tariff this library ships.
pub const HANOI_TARIFF_JSON: &str = include_str!("hanoi-tariff.json");

/// What a vehicle is: a product rides some modes and not others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A bus (its validator has no gate).
    Bus,
    /// The metro (a gate validator).
    Metro,
}

/// Which routes a product's credential rides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteRule {
    /// Every route; the credential names none (route 0).
    Any,
    /// Only the route the credential names, which is never 0.
    Named,
    /// The route the credential names, or every route when it names none (a network-wide
    /// ticket, where the city sells one).
    NamedOrNetwork,
}

/// Where one product rides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRule {
    /// The modes it rides.
    pub modes: Vec<Mode>,
    /// The routes it rides.
    pub route: RouteRule,
    /// Whether the rule is the operator's confirmed one (false: city policy set here as an
    /// assumption).
    #[serde(default = "confirmed_by_default")]
    pub confirmed: bool,
    /// Why it is unconfirmed, or where it comes from.
    #[serde(default)]
    pub note: String,
}

fn confirmed_by_default() -> bool {
    true
}

/// A monthly pass's prices for one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyPrice {
    /// The category.
    pub category: Category,
    /// One route, VND.
    pub one_route: u64,
    /// All routes, VND.
    pub all_routes: u64,
}

/// Prices that are city policy rather than a published tariff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPrices {
    /// Whether the operator confirmed them.
    pub confirmed: bool,
    /// Where they come from.
    #[serde(default)]
    pub note: String,
    /// By category; a category not listed is not sold one.
    #[serde(default)]
    pub prices: HashMap<Category, u64>,
}

/// One tariff: the prices in force from a date and where each product rides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    /// First day in force, `YYYY-MM-DD`.
    pub effective_from: String,
    /// Where the figures come from.
    #[serde(default)]
    pub source: String,
    /// Trip fares by distance: (distance below which it applies, in km; fare in VND).
    pub trip_fares: Vec<(u32, u64)>,
    /// Fare for trips at or above the last band.
    pub longest_trip_fare: u64,
    /// Monthly pass prices by category.
    pub monthly: Vec<MonthlyPrice>,
    /// A day pass naming no route (every route, every mode it rides): city policy.
    #[serde(default)]
    pub network_day_pass: PolicyPrices,
    /// Where each product rides; a product with no rule rides nowhere.
    pub products: HashMap<Product, ProductRule>,
}

/// The tariff shipped with the library, parsed once.
pub fn shipped() -> &'static Tariff {
    static SHIPPED: OnceLock<Tariff> = OnceLock::new();
    SHIPPED.get_or_init(Tariff::hanoi)
}

impl Tariff {
    /// The tariff this library ships (tested to parse; an empty one otherwise, which sells
    /// and rides nothing).
    pub fn hanoi() -> Tariff {
        Tariff::from_json(HANOI_TARIFF_JSON).unwrap_or(Tariff {
            effective_from: String::new(),
            source: String::new(),
            trip_fares: Vec::new(),
            longest_trip_fare: 0,
            monthly: Vec::new(),
            network_day_pass: PolicyPrices::default(),
            products: HashMap::new(),
        })
    }

    /// Parses and checks a tariff: a date, distance bands ascending, a rule for every product.
    pub fn from_json(json: &str) -> Result<Tariff, String> {
        let t: Tariff = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if chrono::NaiveDate::parse_from_str(&t.effective_from, "%Y-%m-%d").is_err() {
            return Err(format!(
                "effective_from {:?} is not a date",
                t.effective_from
            ));
        }
        if t.trip_fares.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("trip fare bands must ascend".into());
        }
        for code in 1..=u8::MAX {
            if let Some(p) = Product::from_code(code) {
                if !t.products.contains_key(&p) {
                    return Err(format!("no rule for product {p:?}"));
                }
            }
        }
        Ok(t)
    }

    /// The fare of one trip of `route_length_km` (the route's length sets the fare band).
    pub fn trip_fare(&self, route_length_km: u32) -> u64 {
        self.trip_fares
            .iter()
            .find(|(below, _)| route_length_km < *below)
            .map(|(_, fare)| *fare)
            .unwrap_or(self.longest_trip_fare)
    }

    /// The price of a product naming no line, for a category, or `None` if it is not sold to
    /// them. Free riders pay 0 for a free pass. A line's day and week tickets and monthly pass
    /// are priced by the metro table.
    pub fn price(&self, product: Product, category: Category) -> Option<u64> {
        match product {
            Product::FreePass => category.rides_free().then_some(0),
            Product::PayAsYouGo => (!category.rides_free()).then_some(0),
            Product::DayPass => self.network_day_pass.prices.get(&category).copied(),
            Product::WeekPass => None,
            Product::MonthlySingleRoute | Product::MonthlyAllRoutes => {
                let m = self.monthly.iter().find(|m| m.category == category)?;
                Some(if product == Product::MonthlySingleRoute {
                    m.one_route
                } else {
                    m.all_routes
                })
            }
        }
    }

    /// Whether a credential for `product` may name `route` (0: none).
    pub fn may_name(&self, product: Product, route: u16) -> bool {
        match self.products.get(&product).map(|r| r.route) {
            None => false,
            Some(RouteRule::Any) => route == 0,
            Some(RouteRule::Named) => route != 0,
            Some(RouteRule::NamedOrNetwork) => true,
        }
    }

    /// Whether a credential for `product` naming `pass_route` rides a `mode` vehicle on
    /// `route`.
    pub fn rides(&self, product: Product, pass_route: u16, mode: Mode, route: u16) -> bool {
        let Some(rule) = self.products.get(&product) else {
            return false;
        };
        rule.modes.contains(&mode)
            && match rule.route {
                RouteRule::Any => true,
                RouteRule::Named => pass_route != 0 && pass_route == route,
                RouteRule::NamedOrNetwork => pass_route == 0 || pass_route == route,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fares_and_prices() {
        let t = Tariff::hanoi();
        assert_eq!(t, *shipped());
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
        assert_eq!(t.price(Product::WeekPass, Category::Standard), None);
        assert!(!t.network_day_pass.confirmed, "city policy, unconfirmed");
    }

    #[test]
    fn where_products_ride_is_data() {
        let t = Tariff::hanoi();
        // A single-route pass never names route 0, and rides its route only.
        assert!(!t.may_name(Product::MonthlySingleRoute, 0));
        assert!(t.may_name(Product::MonthlySingleRoute, 32));
        assert!(!t.rides(Product::MonthlySingleRoute, 0, Mode::Bus, 0));
        assert!(t.rides(Product::MonthlySingleRoute, 32, Mode::Bus, 32));
        assert!(!t.rides(Product::MonthlySingleRoute, 32, Mode::Bus, 33));
        // All routes: names none.
        assert!(!t.may_name(Product::MonthlyAllRoutes, 32));
        assert!(t.rides(Product::MonthlyAllRoutes, 0, Mode::Bus, 86));
        // A line's day ticket rides its line; a network day pass (route 0) rides anywhere.
        assert!(t.rides(Product::DayPass, 902, Mode::Metro, 902));
        assert!(!t.rides(Product::DayPass, 902, Mode::Metro, 903));
        assert!(!t.rides(Product::DayPass, 902, Mode::Bus, 32));
        assert!(t.rides(Product::DayPass, 0, Mode::Bus, 32));
        // The week ticket is the metro's, on a named line.
        assert!(!t.may_name(Product::WeekPass, 0));
        assert!(t.rides(Product::WeekPass, 903, Mode::Metro, 903));
        assert!(!t.rides(Product::WeekPass, 903, Mode::Bus, 903));
        // Another operator's rules: all-routes passes kept off the metro.
        let mut json: serde_json::Value =
            serde_json::from_str(HANOI_TARIFF_JSON).unwrap_or_default();
        json["products"]["monthly_all_routes"]["modes"] = serde_json::json!(["bus"]);
        let strict = Tariff::from_json(&json.to_string()).unwrap_or_else(|_| Tariff::hanoi());
        assert!(!strict.rides(Product::MonthlyAllRoutes, 0, Mode::Metro, 902));
        // A product with no rule is refused at load.
        json["products"]
            .as_object_mut()
            .map(|p| p.remove("week_pass"));
        assert!(Tariff::from_json(&json.to_string()).is_err());
    }
}
