//! A hybrid logical clock: physical milliseconds plus a counter, so that the order of writes
//! follows real time when clocks agree and stays causal when they do not. Encoded as a fixed-width
//! string that sorts like the clock: `wall(13 digits)-counter(6 digits)-node`.

/// Largest counter (6 digits).
pub const MAX_COUNTER: u32 = 999_999;
/// Clocks more than this far ahead of a receiver's wall clock are refused (a device whose clock
/// is wrong must not drag everyone's clock into the future).
pub const MAX_AHEAD_MS: u64 = 24 * 3600 * 1000;

/// A clock reading.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hlc {
    /// Milliseconds since the epoch.
    pub wall_ms: u64,
    /// Tie breaker within one millisecond.
    pub counter: u32,
    /// The node (device) that made it: breaks ties between devices.
    pub node: String,
}

impl Hlc {
    /// Parses the string form; `None` if malformed.
    pub fn parse(text: &str) -> Option<Hlc> {
        let mut parts = text.splitn(3, '-');
        let wall = parts.next()?;
        let counter = parts.next()?;
        let node = parts.next()?;
        // Digits only: `u32` parsing takes a leading `+`, which would sort apart from the
        // clock it reads as.
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if wall.len() != 13 || counter.len() != 6 || !digits(wall) || !digits(counter) {
            return None;
        }
        Some(Hlc {
            wall_ms: wall.parse().ok()?,
            counter: counter.parse().ok()?,
            node: node.to_owned(),
        })
    }

    /// The next reading on `node` at physical time `now_ms`, after `last` (this node's previous
    /// reading or the newest one it has seen).
    pub fn tick(last: Option<&Hlc>, now_ms: u64, node: &str) -> Hlc {
        match last {
            // The counter has 6 digits: past them, borrow a millisecond from the future.
            Some(l) if l.wall_ms >= now_ms && l.counter >= MAX_COUNTER => Hlc {
                wall_ms: l.wall_ms + 1,
                counter: 0,
                node: node.to_owned(),
            },
            Some(l) if l.wall_ms >= now_ms => Hlc {
                wall_ms: l.wall_ms,
                counter: l.counter + 1,
                node: node.to_owned(),
            },
            _ => Hlc {
                wall_ms: now_ms,
                counter: 0,
                node: node.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:013}-{:06}-{}", self.wall_ms, self.counter, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_six_digits_and_nothing_else() {
        assert!(Hlc::parse("1700000000000-099999-n").is_some());
        for bad in [
            "1700000000000-+99999-n",
            "1700000000000- 99999-n",
            "+700000000000-099999-n",
        ] {
            assert_eq!(Hlc::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn strings_sort_like_clocks_and_ticks_never_go_back() {
        let a = Hlc::tick(None, 1_700_000_000_000, "a");
        let b = Hlc::tick(Some(&a), 1_699_999_999_000, "a"); // clock went back
        let c = Hlc::tick(Some(&b), 1_700_000_000_500, "b");
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert_eq!(Hlc::parse(&c.to_string()), Some(c.clone()));
        // A full counter carries into the wall clock; the string still sorts and parses.
        let full = Hlc {
            wall_ms: c.wall_ms,
            counter: MAX_COUNTER,
            node: "b".into(),
        };
        let next = Hlc::tick(Some(&full), c.wall_ms, "b");
        assert!(next > full && next.to_string() > full.to_string());
        assert_eq!(Hlc::parse(&next.to_string()), Some(next));
        for bad in [
            "",
            "1-2-3",
            "170000000000x-000000-a",
            "1700000000000-00000-a",
        ] {
            assert_eq!(Hlc::parse(bad), None, "{bad}");
        }
    }
}
