//! How a verdict is shown and heard, the same on every validator app: a signal colour, a beep
//! pattern and one short line in Vietnamese and in English. A rider learns one language of
//! lights and beeps across buses and metro gates; a driver reads the line at a glance.
//!
//! Three signals: **go** (green, one short high beep), **warn** (amber, two short beeps: let
//! the rider in, but tell them something: the pass ends within [`WARN_DAYS`] days), **stop**
//! (red, one long low tone).

use super::reason::Reason;
use super::wire::CredentialFields;

/// A pass ending within this many days is let in with a warning.
pub const WARN_DAYS: u64 = 3;

/// The signal a verdict gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Let in.
    Go,
    /// Let in, with something to tell the rider.
    Warn,
    /// Not let in.
    Stop,
}

impl Signal {
    /// The screen colour, `#RRGGBB` (green 700, amber 800, red 800 of Material's palette:
    /// readable in sunlight and apart for the common colour blindnesses by their brightness).
    pub fn colour(self) -> &'static str {
        match self {
            Signal::Go => "#2E7D32",
            Signal::Warn => "#F9A825",
            Signal::Stop => "#C62828",
        }
    }

    /// The beep pattern: tones in order, each a frequency and a length, then a pause.
    pub fn beeps(self) -> &'static [Beep] {
        const GO: [Beep; 1] = [Beep {
            frequency_hz: 2_000,
            duration_ms: 120,
            pause_ms: 0,
        }];
        const WARN: [Beep; 2] = [
            Beep {
                frequency_hz: 1_500,
                duration_ms: 100,
                pause_ms: 80,
            },
            Beep {
                frequency_hz: 1_500,
                duration_ms: 100,
                pause_ms: 0,
            },
        ];
        const STOP: [Beep; 1] = [Beep {
            frequency_hz: 400,
            duration_ms: 600,
            pause_ms: 0,
        }];
        match self {
            Signal::Go => &GO,
            Signal::Warn => &WARN,
            Signal::Stop => &STOP,
        }
    }
}

/// One tone of a beep pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Beep {
    /// Pitch.
    pub frequency_hz: u32,
    /// Length of the tone.
    pub duration_ms: u32,
    /// Silence after it.
    pub pause_ms: u32,
}

/// What the validator shows and plays for a verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Presentation {
    /// Go, warn or stop.
    pub signal: Signal,
    /// The screen colour, `#RRGGBB`.
    pub colour: String,
    /// The beep pattern.
    pub beeps: Vec<Beep>,
    /// What the line says, as a stable key (`transit.pass_days_left`): an app translates or
    /// voices it in any language with [`Presentation::message_args`]. Every key and its
    /// arguments: [`MESSAGES`] and docs/protocol/transit-qr.md.
    pub message_key: String,
    /// The key's arguments by name (`days`), as text.
    pub message_args: Vec<(String, String)>,
    /// One short line in Vietnamese (the key's text).
    pub line_vi: String,
    /// The same in English.
    pub line_en: String,
}

/// Every message a verdict or an inspection shows: key, its arguments, and the Vietnamese and
/// English lines with `{argument}` where an argument goes.
pub const MESSAGES: &[(&str, &[&str], &str, &str)] = &[
    ("transit.welcome", &[], "Mời lên xe", "Welcome aboard"),
    (
        "transit.welcome.pass_ends_today",
        &[],
        "Mời lên xe. Vé hết hạn hôm nay",
        "Welcome. Your pass ends today",
    ),
    (
        "transit.welcome.pass_days_left",
        &["days"],
        "Mời lên xe. Vé còn {days} ngày",
        "Welcome. Your pass ends in {days} days",
    ),
    ("transit.entry", &[], "Mời vào ga", "Welcome"),
    (
        "transit.entry.pass_ends_today",
        &[],
        "Mời vào ga. Vé hết hạn hôm nay",
        "Welcome. Your pass ends today",
    ),
    (
        "transit.entry.pass_days_left",
        &["days"],
        "Mời vào ga. Vé còn {days} ngày",
        "Welcome. Your pass ends in {days} days",
    ),
    ("transit.exit", &[], "Hẹn gặp lại", "Goodbye"),
    (
        "transit.exit.pass_ends_today",
        &[],
        "Hẹn gặp lại. Vé hết hạn hôm nay",
        "Goodbye. Your pass ends today",
    ),
    (
        "transit.exit.pass_days_left",
        &["days"],
        "Hẹn gặp lại. Vé còn {days} ngày",
        "Goodbye. Your pass ends in {days} days",
    ),
    (
        "transit.cap_reached",
        &[],
        "Đã đủ mức trần hôm nay: miễn phí",
        "Cap reached today: this ride is free",
    ),
    (
        "transit.with_holder",
        &[],
        "Vé người phụ thuộc: đi cùng người giữ vé",
        "Dependant's ticket: with its holder",
    ),
    (
        "transit.holder_first",
        &[],
        "Người giữ vé quẹt vé của mình trước",
        "Holder's own ticket first",
    ),
    (
        "transit.code_used",
        &[],
        "Mã đã được sử dụng",
        "Code already used",
    ),
    (
        "transit.code_expired",
        &[],
        "Mã đã hết hạn, mở lại ứng dụng",
        "Code expired: reopen the app",
    ),
    ("transit.pass_expired", &[], "Vé đã hết hạn", "Pass expired"),
    (
        "transit.pass_not_yet_valid",
        &[],
        "Vé chưa có hiệu lực",
        "Pass not valid yet",
    ),
    (
        "transit.wrong_route",
        &[],
        "Vé không dùng cho tuyến này",
        "Pass not valid on this route",
    ),
    ("transit.pass_blocked", &[], "Vé đã bị khóa", "Pass blocked"),
    (
        "transit.phone_clock_wrong",
        &[],
        "Giờ trên điện thoại không đúng",
        "Phone clock is wrong",
    ),
    (
        "transit.validator_outdated",
        &[],
        "Máy soát vé cần cập nhật",
        "Validator needs an update",
    ),
    (
        "transit.no_entry_tap",
        &[],
        "Chưa quẹt vào ga, gặp nhân viên",
        "No entry tap: see staff",
    ),
    (
        "transit.already_inside",
        &[],
        "Vé này đang ở trong ga, gặp nhân viên",
        "This ticket is already inside: see staff",
    ),
    (
        "transit.not_a_ticket",
        &[],
        "Không đọc được mã vé",
        "Not a ticket code",
    ),
    (
        "transit.invalid_ticket",
        &[],
        "Mã không hợp lệ",
        "Invalid ticket",
    ),
    ("transit.inspection.valid", &[], "Vé hợp lệ", "Valid ticket"),
    (
        "transit.inspection.not_tapped",
        &[],
        "Vé hợp lệ, chưa quẹt trên xe này",
        "Valid, but no tap on this vehicle",
    ),
];

impl Presentation {
    /// The presentation of `signal` saying message `key` with `args` (one of [`MESSAGES`]).
    pub fn new(signal: Signal, key: &str, args: &[(&str, String)]) -> Presentation {
        let (vi, en) = MESSAGES
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|(_, _, vi, en)| (*vi, *en))
            .unwrap_or(("", ""));
        let fill = |text: &str| {
            args.iter().fold(text.to_owned(), |t, (name, value)| {
                t.replace(&format!("{{{name}}}"), value)
            })
        };
        let mut en = fill(en);
        // English plural: "1 days" reads wrong.
        if args.iter().any(|(n, v)| *n == "days" && v == "1") {
            en = en.replace("1 days", "1 day");
        }
        Presentation {
            signal,
            colour: signal.colour().to_owned(),
            beeps: signal.beeps().to_vec(),
            message_key: key.to_owned(),
            message_args: args
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            line_vi: fill(vi),
            line_en: en,
        }
    }

    fn say(&mut self, signal: Signal, key: &str) {
        let args = std::mem::take(&mut self.message_args);
        let args: Vec<(&str, String)> = args.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        *self = Presentation::new(signal, key, &args);
    }
}

/// The presentation of a verdict for `reason`, with the credential's fields when the QR was
/// readable, at validator time `now`.
pub fn present(reason: Reason, fields: Option<&CredentialFields>, now: u64) -> Presentation {
    let stop = |key: &str| Presentation::new(Signal::Stop, key, &[]);
    match reason {
        // A day pass ends the day it is used: nothing to warn about.
        Reason::Ok => match fields
            .filter(|f| f.product != super::Product::DayPass)
            .map(|f| days_left(f, now))
        {
            Some(Some(0)) => {
                Presentation::new(Signal::Warn, "transit.welcome.pass_ends_today", &[])
            }
            Some(Some(days)) => Presentation::new(
                Signal::Warn,
                "transit.welcome.pass_days_left",
                &[("days", days.to_string())],
            ),
            _ => Presentation::new(Signal::Go, "transit.welcome", &[]),
        },
        Reason::Replayed | Reason::Passback => stop("transit.code_used"),
        Reason::Expired | Reason::CredentialExpired => stop("transit.code_expired"),
        Reason::PassExpired => stop("transit.pass_expired"),
        Reason::NotYetValid => stop("transit.pass_not_yet_valid"),
        Reason::WrongRoute => stop("transit.wrong_route"),
        Reason::Revoked => stop("transit.pass_blocked"),
        Reason::ClockSkew => stop("transit.phone_clock_wrong"),
        Reason::DenyListStale => stop("transit.validator_outdated"),
        Reason::NoEntry => stop("transit.no_entry_tap"),
        Reason::HolderNotTapped => stop("transit.holder_first"),
        Reason::AlreadyInside => stop("transit.already_inside"),
        Reason::BadFormat => stop("transit.not_a_ticket"),
        Reason::UnknownIssuer
        | Reason::IssuerKeyExpired
        | Reason::BadIssuerSignature
        | Reason::BadDeviceSignature => stop("transit.invalid_ticket"),
    }
}

/// A let-through for a pay-as-you-go card that already reached today's cap: amber, the ride is
/// free.
pub fn cap_reached(p: &mut Presentation) {
    if p.signal == Signal::Stop {
        return;
    }
    p.say(Signal::Warn, "transit.cap_reached");
}

/// A let-through for a dependant's ticket riding with its holder: amber, so the driver or the
/// gate's staff sees who travels on it (its category is on the verdict).
pub fn with_holder(p: &mut Presentation) {
    if p.signal == Signal::Stop {
        return;
    }
    p.say(Signal::Warn, "transit.with_holder");
}

/// The same verdict at a metro gate: riders walk into a station or out of it, they do not
/// board (only the lines of a let-through change).
pub fn at_gate(p: &mut Presentation, direction: super::metro::GateDirection) {
    use super::metro::GateDirection;
    if p.signal == Signal::Stop {
        return;
    }
    let Some(rest) = p.message_key.strip_prefix("transit.welcome") else {
        return;
    };
    let place = match direction {
        GateDirection::Entry => "transit.entry",
        GateDirection::Exit => "transit.exit",
    };
    let key = format!("{place}{rest}");
    let signal = p.signal;
    p.say(signal, &key);
}

/// Whole days left on a pass ending within [`WARN_DAYS`] (0: it ends today), or `None`.
fn days_left(f: &CredentialFields, now: u64) -> Option<u64> {
    let left = u64::from(f.pass_valid_until).checked_sub(now)?;
    let days = left / 86_400;
    (days < WARN_DAYS).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_speak_of_stations_not_of_boarding() {
        use super::super::metro::GateDirection;
        let mut entry = present(Reason::Ok, None, 0);
        at_gate(&mut entry, GateDirection::Entry);
        assert_eq!(
            (entry.line_vi.as_str(), entry.line_en.as_str()),
            ("Mời vào ga", "Welcome")
        );
        let mut exit = present(Reason::Ok, None, 0);
        at_gate(&mut exit, GateDirection::Exit);
        assert_eq!(
            (exit.line_vi.as_str(), exit.line_en.as_str()),
            ("Hẹn gặp lại", "Goodbye")
        );
        let mut refused = present(Reason::NoEntry, None, 0);
        at_gate(&mut refused, GateDirection::Exit);
        assert_eq!(refused.line_en, "No entry tap: see staff");
    }

    #[test]
    fn every_message_has_both_lines_its_arguments_and_fits_the_screen() {
        let mut keys = std::collections::HashSet::new();
        for (key, args, vi, en) in MESSAGES {
            assert!(keys.insert(*key), "{key} twice");
            for text in [vi, en] {
                let named: Vec<&str> = text
                    .split('{')
                    .skip(1)
                    .filter_map(|t| t.split('}').next())
                    .collect();
                assert_eq!(&named, args, "{key}: {text}");
            }
            let sample: Vec<(&str, String)> = args.iter().map(|a| (*a, "2".to_owned())).collect();
            let p = Presentation::new(Signal::Warn, key, &sample);
            assert!(
                !p.line_vi.contains('{') && !p.line_en.contains('{'),
                "{key}"
            );
            assert!(p.line_vi.chars().count() <= 40, "{}", p.line_vi);
            assert!(p.line_en.len() <= 40, "{}", p.line_en);
        }
        let one = Presentation::new(
            Signal::Warn,
            "transit.welcome.pass_days_left",
            &[("days", "1".into())],
        );
        assert_eq!(one.line_en, "Welcome. Your pass ends in 1 day");
        assert_eq!(one.message_args, [("days".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn every_reason_has_a_signal_a_sound_and_two_lines() {
        for reason in super::super::reason::REASON_CODES {
            let p = present(reason, None, 0);
            assert_eq!(p.signal == Signal::Stop, reason != Reason::Ok, "{reason:?}");
            assert!(!p.line_vi.is_empty() && !p.line_en.is_empty());
            assert!(
                MESSAGES.iter().any(|(k, ..)| *k == p.message_key),
                "{reason:?}"
            );
            assert!(p.line_vi.chars().count() <= 40, "{}", p.line_vi);
            assert!(p.line_en.len() <= 40, "{}", p.line_en);
            assert!(!p.beeps.is_empty());
            assert_eq!(p.colour.len(), 7);
        }
    }
}
