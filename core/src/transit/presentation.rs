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
    /// One short line in Vietnamese.
    pub line_vi: String,
    /// The same in English.
    pub line_en: String,
}

/// The presentation of a verdict for `reason`, with the credential's fields when the QR was
/// readable, at validator time `now`.
pub fn present(reason: Reason, fields: Option<&CredentialFields>, now: u64) -> Presentation {
    let (signal, vi, en): (Signal, String, String) = match reason {
        // A day pass ends the day it is used: nothing to warn about.
        Reason::Ok => match fields
            .filter(|f| f.product != super::Product::DayPass)
            .map(|f| days_left(f, now))
        {
            Some(Some(0)) => (
                Signal::Warn,
                "Mời lên xe. Vé hết hạn hôm nay".into(),
                "Welcome. Your pass ends today".into(),
            ),
            Some(Some(days)) => (
                Signal::Warn,
                format!("Mời lên xe. Vé còn {days} ngày"),
                format!(
                    "Welcome. Your pass ends in {days} day{}",
                    if days == 1 { "" } else { "s" }
                ),
            ),
            _ => (Signal::Go, "Mời lên xe".into(), "Welcome aboard".into()),
        },
        Reason::Replayed | Reason::Passback => (
            Signal::Stop,
            "Mã đã được sử dụng".into(),
            "Code already used".into(),
        ),
        Reason::Expired | Reason::CredentialExpired => (
            Signal::Stop,
            "Mã đã hết hạn, mở lại ứng dụng".into(),
            "Code expired: reopen the app".into(),
        ),
        Reason::PassExpired => (Signal::Stop, "Vé đã hết hạn".into(), "Pass expired".into()),
        Reason::NotYetValid => (
            Signal::Stop,
            "Vé chưa có hiệu lực".into(),
            "Pass not valid yet".into(),
        ),
        Reason::WrongRoute => (
            Signal::Stop,
            "Vé không dùng cho tuyến này".into(),
            "Pass not valid on this route".into(),
        ),
        Reason::Revoked => (Signal::Stop, "Vé đã bị khóa".into(), "Pass blocked".into()),
        Reason::ClockSkew => (
            Signal::Stop,
            "Giờ trên điện thoại không đúng".into(),
            "Phone clock is wrong".into(),
        ),
        Reason::DenyListStale => (
            Signal::Stop,
            "Máy soát vé cần cập nhật".into(),
            "Validator needs an update".into(),
        ),
        Reason::NoEntry => (
            Signal::Stop,
            "Chưa quẹt vào ga, gặp nhân viên".into(),
            "No entry tap: see staff".into(),
        ),
        Reason::BadFormat => (
            Signal::Stop,
            "Không đọc được mã vé".into(),
            "Not a ticket code".into(),
        ),
        Reason::UnknownIssuer
        | Reason::IssuerKeyExpired
        | Reason::BadIssuerSignature
        | Reason::BadDeviceSignature => (
            Signal::Stop,
            "Mã không hợp lệ".into(),
            "Invalid ticket".into(),
        ),
    };
    Presentation {
        signal,
        colour: signal.colour().to_owned(),
        beeps: signal.beeps().to_vec(),
        line_vi: vi,
        line_en: en,
    }
}

/// A let-through for a pay-as-you-go card that already reached today's cap: amber, the ride is
/// free.
pub fn cap_reached(p: &mut Presentation) {
    if p.signal == Signal::Stop {
        return;
    }
    p.signal = Signal::Warn;
    p.colour = Signal::Warn.colour().to_owned();
    p.beeps = Signal::Warn.beeps().to_vec();
    p.line_vi = "Đã đủ mức trần hôm nay: miễn phí".into();
    p.line_en = "Cap reached today: this ride is free".into();
}

/// The same verdict at a metro gate: riders walk into a station or out of it, they do not
/// board (only the lines of a let-through change).
pub fn at_gate(p: &mut Presentation, direction: super::metro::GateDirection) {
    use super::metro::GateDirection;
    if p.signal == Signal::Stop {
        return;
    }
    let (vi, en) = match direction {
        GateDirection::Entry => ("Mời vào ga", "Welcome"),
        GateDirection::Exit => ("Hẹn gặp lại", "Goodbye"),
    };
    p.line_vi = p.line_vi.replacen("Mời lên xe", vi, 1);
    p.line_en = p.line_en.replacen("Welcome aboard", en, 1);
    if direction == GateDirection::Exit && p.signal == Signal::Go {
        p.line_vi = vi.into();
        p.line_en = en.into();
    }
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
    fn every_reason_has_a_signal_a_sound_and_two_lines() {
        for reason in super::super::reason::REASON_CODES {
            let p = present(reason, None, 0);
            assert_eq!(p.signal == Signal::Stop, reason != Reason::Ok, "{reason:?}");
            assert!(!p.line_vi.is_empty() && !p.line_en.is_empty());
            assert!(p.line_vi.chars().count() <= 40, "{}", p.line_vi);
            assert!(p.line_en.len() <= 40, "{}", p.line_en);
            assert!(!p.beeps.is_empty());
            assert_eq!(p.colour.len(), 7);
        }
    }
}
