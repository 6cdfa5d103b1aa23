//! Metro lines: stations, gates, and the operator's station-to-station fare table.
//!
//! The table is data with an effective date (`hanoi-metro-fares.json`, or the operator's own
//! file), never code: fares change by decision, and a journey is priced by the table in force on
//! the day it began. Figures that are not confirmed are marked so in the data.

use serde::{Deserialize, Serialize};

/// The table this library ships: Hanoi lines 2A and 3 (figures unconfirmed, see its `source`).
pub const HANOI_METRO_FARES_JSON: &str = include_str!("hanoi-metro-fares.json");

/// How long an exit gate honours an entry: a day. Past the fare table's journey time the
/// backend charges the maximum fare, but a slow rider is never kept in.
pub const ENTRY_HONOURED_SECS: u64 = 86_400;

/// A second tap of one card at one station, in one direction, within this long is the same
/// entry or exit (a gate slow to open, a second gate tried): one journey, one charge.
pub const REPEAT_TAP_SECS: u64 = 120;

/// Which way a metro gate lets riders through. The codes are on the wire (the tap log): never
/// reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GateDirection {
    /// Into the paid area: the journey starts.
    Entry = 1,
    /// Out of the paid area: the journey ends and is priced.
    Exit = 2,
}

impl GateDirection {
    /// The direction with wire code `code`.
    pub fn from_code(code: u8) -> Option<GateDirection> {
        match code {
            1 => Some(GateDirection::Entry),
            2 => Some(GateDirection::Exit),
            _ => None,
        }
    }
}

/// Where a gate validator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Gate {
    /// The station's code in the fare table.
    pub station: u16,
    /// Entry or exit.
    pub direction: GateDirection,
}

impl std::str::FromStr for Gate {
    type Err = String;

    /// A gate as the operator binds it: `STATION:entry` or `STATION:exit`.
    fn from_str(binding: &str) -> Result<Gate, String> {
        let bad = || format!("{binding:?} is not STATION:entry or STATION:exit");
        let (station, direction) = binding.trim().split_once(':').ok_or_else(bad)?;
        Ok(Gate {
            station: station.parse().map_err(|_| bad())?,
            direction: match direction {
                "entry" => GateDirection::Entry,
                "exit" => GateDirection::Exit,
                _ => return Err(bad()),
            },
        })
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = match self.direction {
            GateDirection::Entry => "entry",
            GateDirection::Exit => "exit",
        };
        write!(f, "{}:{direction}", self.station)
    }
}

/// An entry a gate on the network accepted, as the backend passes it on to exit gates (after
/// verifying the entry's scan: an exit gate trusts its backend, never another gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateEntry {
    /// The card that entered.
    pub card_id: u64,
    /// The station it entered at.
    pub station: u16,
    /// When (the phone's signed QR time, unix seconds).
    pub at: u64,
}

/// `GET /v1/transit/entries`: the entries accepted on the network since a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryFeed {
    /// Entries after the cursor asked for, oldest first.
    pub entries: Vec<GateEntry>,
    /// Ask with this next time.
    pub cursor: u64,
    /// Every entry gate on the network has uploaded its taps up to this time (unix seconds):
    /// an entry before it that is not in the feed did not happen.
    pub complete_until: u64,
    /// The backend's clock when it answered (unix seconds; 0 when not given). An exit gate
    /// measures the feed's age from it, so its own clock's error does not count.
    #[serde(default)]
    pub now: u64,
}

/// `GET /v1/transit/inside`, for entry gates: the cards inside the network now (an entry and no
/// exit yet, within the journey time), each only as a keyed tag, so a gate can tell whether the
/// card before it is inside but learns no card, station or time it is not shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsideFeed {
    /// The key of the tags (32 random bytes, hex), new in every answer.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub salt: String,
    /// [`InsideKey::tag`] of each card inside, hex.
    #[cfg_attr(feature = "openapi", schema(max_items = 200000))]
    pub cards: Vec<String>,
    /// Every exit gate on the network has uploaded its taps up to this time (unix seconds; 0:
    /// not known): a card that left before it is not listed.
    pub exits_complete_until: u64,
    /// The backend's clock when it answered (unix seconds).
    pub now: u64,
}

/// Bytes of an [`InsideKey::tag`].
pub const INSIDE_TAG_LEN: usize = 8;

/// An inside feed's key: HMAC-SHA-256 keyed with its 32-byte salt.
#[derive(Clone)]
pub struct InsideKey(ring::hmac::Key);

impl InsideKey {
    /// The key of a feed's `salt`.
    pub fn new(salt: &[u8; 32]) -> InsideKey {
        InsideKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt))
    }

    /// The tag of `card_id`: the first [`INSIDE_TAG_LEN`] bytes of HMAC-SHA-256 over the card
    /// id's 8 big-endian bytes (nothing else: a vendor's gate computes the same).
    pub fn tag(&self, card_id: u64) -> [u8; INSIDE_TAG_LEN] {
        let mut tag = [0u8; INSIDE_TAG_LEN];
        tag.copy_from_slice(
            &ring::hmac::sign(&self.0, &card_id.to_be_bytes()).as_ref()[..INSIDE_TAG_LEN],
        );
        tag
    }
}

/// One station of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    /// Its code, unique across the table (what gates are configured with).
    pub code: u16,
    /// Its name, as riders know it.
    pub name: String,
}

/// One line and its fares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFares {
    /// The line's name (`2A`).
    pub line: String,
    /// The route code of the line: a single-route pass for it names this route, and the line's
    /// gates are configured with it.
    pub route: u16,
    /// Charged for a journey that cannot be priced from its taps (no exit, no entry).
    pub max_fare_vnd: u64,
    /// The stations in line order.
    pub stations: Vec<Station>,
    /// `fares_vnd[i][j]`: a journey from station `i` to station `j` (same order as `stations`);
    /// the diagonal is the fare for leaving where one entered.
    pub fares_vnd: Vec<Vec<u64>>,
    /// The line's day ticket (unlimited rides on the line for one local day), VND; `None`: not
    /// sold.
    #[serde(default)]
    pub day_ticket_vnd: Option<u64>,
    /// The line's week ticket (seven local days), VND; `None`: not sold (its price is not
    /// confirmed).
    #[serde(default)]
    pub week_ticket_vnd: Option<u64>,
}

/// The fares in force from one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetroTariff {
    /// First local day in force, `YYYY-MM-DD`.
    pub effective_from: String,
    /// Whether the figures are the operator's confirmed ones.
    pub confirmed: bool,
    /// Where the figures come from.
    pub source: String,
    /// An entry with no exit within this time is charged its line's maximum fare.
    pub max_journey_secs: u32,
    /// The monthly pass for one line (a single-route pass naming the line's route), by
    /// category; a category not listed is not sold one.
    #[serde(default)]
    pub monthly_line_pass_vnd: std::collections::HashMap<super::Category, u64>,
    /// The lines.
    pub lines: Vec<LineFares>,
}

/// A station found in a tariff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationRef<'t> {
    /// Its line.
    pub line: &'t LineFares,
    /// Its place on the line.
    pub index: usize,
}

impl StationRef<'_> {
    /// The station's name.
    pub fn name(&self) -> &str {
        &self.line.stations[self.index].name
    }
}

impl MetroTariff {
    /// The station with code `code`.
    pub fn station(&self, code: u16) -> Option<StationRef<'_>> {
        self.lines.iter().find_map(|line| {
            let index = line.stations.iter().position(|s| s.code == code)?;
            Some(StationRef { line, index })
        })
    }

    /// The fare of a journey from `entry` to `exit`; `None` when either station is unknown or
    /// they are on different lines (no fare is defined: the caller charges the maximum).
    pub fn fare(&self, entry: u16, exit: u16) -> Option<u64> {
        let (from, to) = (self.station(entry)?, self.station(exit)?);
        if !std::ptr::eq(from.line, to.line) {
            return None;
        }
        from.line.fares_vnd.get(from.index)?.get(to.index).copied()
    }

    /// Whether `route` is a metro line's route code.
    pub fn is_line(&self, route: u16) -> bool {
        self.line(route).is_some()
    }

    /// The line whose route code is `route`.
    pub fn line(&self, route: u16) -> Option<&LineFares> {
        self.lines.iter().find(|l| l.route == route)
    }

    /// The maximum fare charged for a journey that entered (or left) at `station`: its line's,
    /// or the highest of all lines for an unknown station.
    pub fn max_fare(&self, station: u16) -> u64 {
        match self.station(station) {
            Some(s) => s.line.max_fare_vnd,
            None => self.lines.iter().map(|l| l.max_fare_vnd).max().unwrap_or(0),
        }
    }
}

/// Every tariff the operator published, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetroFares {
    /// The tariffs, by `effective_from`.
    pub tariffs: Vec<MetroTariff>,
}

impl MetroFares {
    /// The table this library ships.
    pub fn hanoi() -> MetroFares {
        // The shipped table is tested to parse: this cannot fail at run time.
        MetroFares::from_json(HANOI_METRO_FARES_JSON).unwrap_or(MetroFares {
            tariffs: Vec::new(),
        })
    }

    /// Parses and checks a fare table: at least one tariff, dates ascending, station codes
    /// unique, one square fare matrix per line with a row per station.
    pub fn from_json(json: &str) -> Result<MetroFares, String> {
        let fares: MetroFares = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if fares.tariffs.is_empty() {
            return Err("no tariff".into());
        }
        let mut previous = "";
        for t in &fares.tariffs {
            if chrono::NaiveDate::parse_from_str(&t.effective_from, "%Y-%m-%d").is_err() {
                return Err(format!(
                    "effective_from {:?} is not a date",
                    t.effective_from
                ));
            }
            if t.effective_from.as_str() <= previous {
                return Err("tariffs must be in ascending effective_from order".into());
            }
            previous = &t.effective_from;
            if t.max_journey_secs == 0 {
                return Err("max_journey_secs must be positive".into());
            }
            let mut codes = std::collections::HashSet::new();
            for line in &t.lines {
                let n = line.stations.len();
                if n == 0
                    || line.fares_vnd.len() != n
                    || line.fares_vnd.iter().any(|r| r.len() != n)
                {
                    return Err(format!(
                        "line {}: the fare matrix must have one row and one column per station",
                        line.line
                    ));
                }
                if line.stations.iter().any(|s| !codes.insert(s.code)) {
                    return Err(format!("line {}: a station code is used twice", line.line));
                }
            }
        }
        Ok(fares)
    }

    /// The tariff in force on local day `day` (`YYYY-MM-DD`): the newest one that started on or
    /// before it (the oldest one for days before any); `None` only for an empty table.
    pub fn in_force(&self, day: &str) -> Option<&MetroTariff> {
        self.tariffs
            .iter()
            .rev()
            .find(|t| t.effective_from.as_str() <= day)
            .or(self.tariffs.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_prices_journeys() {
        let fares = MetroFares::from_json(HANOI_METRO_FARES_JSON).expect("shipped table");
        let t = fares.in_force("2026-11-27").expect("in force");
        assert!(!t.confirmed, "the shipped figures are marked unconfirmed");
        assert_eq!(
            t.station(201).map(|s| s.name().to_owned()),
            Some("Cát Linh".into())
        );
        assert_eq!(t.fare(201, 201), Some(8_000), "leaving where one entered");
        assert_eq!(t.fare(201, 212), Some(15_000), "the whole line");
        assert_eq!(t.fare(212, 201), Some(15_000));
        assert_eq!(t.fare(201, 205), Some(10_000));
        assert_eq!(t.fare(201, 301), None, "no fare across unconnected lines");
        assert_eq!(t.fare(201, 999), None);
        assert_eq!(t.max_fare(205), 15_000);
        assert_eq!(t.max_fare(303), 12_000);
        assert_eq!(t.max_fare(999), 15_000);
        assert_eq!(
            fares.in_force("2020-01-01").expect("oldest").effective_from,
            "2024-11-01"
        );
        assert!(t.is_line(902) && t.is_line(903) && !t.is_line(32));
        use crate::transit::Category;
        assert_eq!(
            t.monthly_line_pass_vnd.get(&Category::Standard),
            Some(&200_000)
        );
        // Line 2A's group monthly pass (30 people or more).
        assert_eq!(
            t.monthly_line_pass_vnd.get(&Category::Group),
            Some(&140_000)
        );
        // Day tickets per line as sold; the week ticket's price is not confirmed: not sold.
        let day = |route| t.line(route).and_then(|l| l.day_ticket_vnd);
        assert_eq!((day(902), day(903)), (Some(30_000), Some(24_000)));
        assert!(t.lines.iter().all(|l| l.week_ticket_vnd.is_none()));
    }

    #[test]
    fn gate_bindings_read_and_write_back() {
        let gate: Gate = "201:entry".parse().expect("gate");
        assert_eq!(gate.direction, GateDirection::Entry);
        assert_eq!(gate.to_string(), "201:entry");
        assert_eq!(
            "205:exit".parse::<Gate>().map(|g| g.to_string()),
            Ok("205:exit".into())
        );
        for bad in ["201", "201:sideways", "x:entry", "70000:exit", ""] {
            assert!(bad.parse::<Gate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_later_tariff_takes_over_on_its_day_and_bad_tables_are_refused() {
        let mut fares = MetroFares::hanoi();
        let mut next = fares.tariffs[0].clone();
        next.effective_from = "2027-01-01".into();
        next.lines[0].fares_vnd[0][11] = 16_000;
        fares.tariffs.push(next);
        let json = serde_json::to_string(&fares).expect("json");
        let fares = MetroFares::from_json(&json).expect("two tariffs");
        assert_eq!(
            fares.in_force("2026-12-31").expect("t").fare(201, 212),
            Some(15_000)
        );
        assert_eq!(
            fares.in_force("2027-01-01").expect("t").fare(201, 212),
            Some(16_000)
        );

        let mut bad = fares.clone();
        bad.tariffs[0].lines[0].fares_vnd.pop();
        assert!(MetroFares::from_json(&serde_json::to_string(&bad).expect("json")).is_err());
        let mut bad = fares.clone();
        bad.tariffs.swap(0, 1);
        assert!(MetroFares::from_json(&serde_json::to_string(&bad).expect("json")).is_err());
        let mut bad = fares.clone();
        bad.tariffs[0].lines[1].stations[0].code = 201;
        assert!(MetroFares::from_json(&serde_json::to_string(&bad).expect("json")).is_err());
        assert!(MetroFares::from_json("{\"tariffs\": []}").is_err());
        assert!(MetroFares::from_json("not json").is_err());
    }
}
