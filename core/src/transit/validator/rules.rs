//! The rule engine: the decision on one scan. The ticket's rules (signatures, with the issuer's
//! checked once per credential, deny list, windows, the QR's age, the route), then replay and
//! passback on a bus or at an entry gate, or the rules of an exit (the card entered) at an exit
//! gate; and the verdict built from the reason.

use super::signatures::{
    check_windows, issuer_key_in_force, verify_device_signature, verify_issuer_signature,
};
use super::verdict::Verdict;
use super::Validator;
use crate::transit::metro::GateDirection;
use crate::transit::reason::Reason;
use crate::transit::tariff::Mode;
use crate::transit::wire::{FormatError, Payload};
use crate::transit::{Product, TRAVEL_TOGETHER_SECS};

impl Validator {
    pub(super) fn decide(&mut self, text: &str, now: u64) -> (Verdict, Option<Payload>) {
        let payload = match Payload::from_qr_text(text.trim_end_matches(['\r', '\n'])) {
            Ok(p) => p,
            Err(
                FormatError::Prefix
                | FormatError::Base45
                | FormatError::Length
                | FormatError::Version
                | FormatError::Field,
            ) => return (self.reject(Reason::BadFormat, None, now), None),
        };
        let reason = self.check(&payload, now);
        let mut verdict = self.reject(reason, Some(&payload), now);
        if reason == Reason::Ok {
            let f = &payload.fields;
            verdict.display = format!("{} - {}", f.product.label(), f.category.label());
        }
        (verdict, Some(payload))
    }

    /// The rules about the ticket itself: signatures, deny list, windows, the QR's age, the
    /// route. Nothing is remembered but the verified credential.
    pub(super) fn check_ticket(&mut self, p: &Payload, now: u64, route: u16) -> Reason {
        let f = &p.fields;
        if self.config.fail_closed_when_stale && self.deny_list_status(now).stale {
            return Reason::DenyListStale;
        }
        if let Err(reason) = self.verify_signatures(p, now) {
            return reason;
        }
        if self.revoked(f) {
            return Reason::Revoked;
        }
        if let Err(reason) = check_windows(f, now) {
            return reason;
        }
        if let Err(reason) = self.check_age(p, now) {
            return reason;
        }
        let mode = if self.config.gate.is_some() {
            Mode::Metro
        } else {
            Mode::Bus
        };
        if !self.config.tariff.rides(f.product, f.route, mode, route) {
            return Reason::WrongRoute;
        }
        Reason::Ok
    }

    /// The rules of an exit: the phone's QR is the card's (signatures, deny list, fresh, not
    /// replayed), and the card entered within the journey time. The pass's own windows and
    /// route were checked at entry: a pass that ends during a ride still gets its rider out.
    fn check_exit(&mut self, p: &Payload, now: u64) -> Reason {
        let f = &p.fields;
        // No fail-closed at an exit: a stale deny list never keeps riders in (its entries still
        // apply).
        if let Err(reason) = self.verify_signatures(p, now) {
            return reason;
        }
        if self.revoked(f) {
            return Reason::Revoked;
        }
        if let Err(reason) = self.check_age(p, now) {
            return reason;
        }
        let replay_key = (f.card_id, p.timestamp, p.counter);
        if self.replay.contains(&replay_key) {
            return Reason::Replayed;
        }
        let journey = u64::from(self.config.entry_honoured_secs);
        let skew = u64::from(self.config.max_future_secs);
        let feed_current = self.entry_feed_current(now);
        // A rider this gate let out moments ago taps again (the gate closed on them): the same
        // exit, let through again (the backend counts it once).
        let again_here = self.let_out_just_now(f.card_id, now);
        let entered = self.entries.get_mut(&f.card_id).filter(|h| {
            !h.used
                && h.entry.at <= now.saturating_add(skew)
                && now <= h.entry.at.saturating_add(journey)
        });
        let repeat = match entered {
            Some(held) => {
                held.used = true;
                self.consumed.push(f.card_id);
                false
            }
            None if again_here => true,
            // The QR is not used up: shown again once the entry is known, it lets the rider out.
            None if feed_current => return Reason::NoEntry,
            // Nobody is locked in by a lost link: with an old feed the rider goes out and the
            // backend prices the journey from the taps it gets.
            None => false,
        };
        self.replay.insert(now, replay_key, self.horizon());
        if repeat {
            // Let out again once, and the window does not move: a phone passed back through
            // this gate for a third rider meets "no entry".
            self.last_accept.remove(&f.card_id);
        } else {
            self.last_accept.insert(f.card_id, now);
        }
        Reason::Ok
    }

    /// Whether this validator accepted `card` within the repeat window before `now`.
    pub(super) fn let_out_just_now(&self, card: u64, now: u64) -> bool {
        self.last_accept
            .get(&card)
            .is_some_and(|t| now >= *t && now - *t <= crate::transit::metro::REPEAT_TAP_SECS)
    }

    /// The QR is fresh: not older than the acceptance window, not ahead beyond the tolerance.
    fn check_age(&self, p: &Payload, now: u64) -> Result<(), Reason> {
        let ts = u64::from(p.timestamp);
        if ts + u64::from(self.config.max_age_secs) < now {
            return Err(Reason::Expired);
        }
        if ts > now + u64::from(self.config.max_future_secs) {
            return Err(Reason::ClockSkew);
        }
        Ok(())
    }

    /// Every rule of a tap: the ticket's, then replay and passback (remembered from here on).
    fn check(&mut self, p: &Payload, now: u64) -> Reason {
        if self.is_exit_gate() {
            return self.check_exit(p, now);
        }
        let reason = self.check_ticket(p, now, self.config.route);
        if reason != Reason::Ok {
            return reason;
        }
        let f = &p.fields;
        let replay_key = (f.card_id, p.timestamp, p.counter);
        if self.replay.contains(&replay_key) {
            return Reason::Replayed;
        }
        // Not remembered: shown again once the holder has tapped, the same QR rides.
        if f.with_holder && !self.holder_tapped(&f.device_public_key, now) {
            return Reason::HolderNotTapped;
        }
        // Nor this: the staff who let the rider in after all may need it.
        if self.is_entry_gate() && self.known_inside(f.card_id, now) {
            return Reason::AlreadyInside;
        }
        // Remember the QR from here on: a rejected passback must not be retried as new.
        self.replay.insert(now, replay_key, self.horizon());
        if let Some(last) = self.last_accept.get(&f.card_id) {
            if now < last + u64::from(self.config.passback_secs) {
                return Reason::Passback;
            }
        }
        self.last_accept.insert(f.card_id, now);
        if self.last_accept.len() > self.config.replay_capacity {
            let limit = now.saturating_sub(u64::from(self.config.passback_secs));
            self.last_accept.retain(|_, t| *t >= limit);
        }
        if !f.with_holder {
            self.holders.insert(f.device_public_key, now);
            if self.holders.len() > self.config.replay_capacity {
                let limit = now.saturating_sub(TRAVEL_TOGETHER_SECS);
                self.holders.retain(|_, t| *t >= limit);
            }
        }
        Reason::Ok
    }

    /// Whether a ticket of the phone `key` that needs no holder was accepted here within
    /// [`TRAVEL_TOGETHER_SECS`] before `now`.
    fn holder_tapped(&self, key: &[u8; 33], now: u64) -> bool {
        self.holders
            .get(key)
            .is_some_and(|t| now >= *t && now - *t <= TRAVEL_TOGETHER_SECS)
    }

    fn reject(&self, reason: Reason, payload: Option<&Payload>, now: u64) -> Verdict {
        let (card_id, product, category) = match payload {
            Some(p) => (
                Some(p.fields.card_id),
                Some(p.fields.product),
                Some(p.fields.category),
            ),
            None => (None, None, None),
        };
        let display = match reason {
            Reason::Ok => "Hợp lệ".to_string(),
            Reason::Replayed | Reason::Passback => "Mã đã được sử dụng".into(),
            Reason::Expired | Reason::CredentialExpired => "Mã đã hết hạn".into(),
            Reason::PassExpired => "Vé đã hết hạn".into(),
            Reason::NotYetValid => "Vé chưa có hiệu lực".into(),
            Reason::WrongRoute => "Vé không dùng cho tuyến này".into(),
            Reason::Revoked => "Vé đã bị khóa".into(),
            Reason::ClockSkew => "Giờ trên điện thoại không đúng".into(),
            Reason::DenyListStale => "Máy soát vé cần cập nhật".into(),
            _ => "Mã không hợp lệ".into(),
        };
        let mut presentation =
            crate::transit::presentation::present(reason, payload.map(|p| &p.fields), now);
        let capped = payload.is_some_and(|p| {
            p.fields.product == Product::PayAsYouGo
                && now < self.capped.1
                && self.capped.0.contains(&p.fields.card_id)
        });
        // At an exit the journey is charged, not the gate passage: the cap shows at entries.
        if capped
            && self
                .config
                .gate
                .is_none_or(|g| g.direction == GateDirection::Entry)
        {
            crate::transit::presentation::cap_reached(&mut presentation);
        }
        // At an exit the party leaves as it may: no holder is asked for, nothing to show.
        if payload.is_some_and(|p| p.fields.with_holder) && !self.is_exit_gate() {
            crate::transit::presentation::with_holder(&mut presentation);
        }
        if let Some(gate) = self.config.gate {
            crate::transit::presentation::at_gate(&mut presentation, gate.direction);
        }
        Verdict {
            accepted: reason == Reason::Ok,
            reason,
            card_id,
            product,
            category,
            display,
            at: now,
            presentation,
        }
    }

    /// [`verify_signatures`](super::signatures::verify_signatures), with the issuer's signature
    /// checked once per credential.
    fn verify_signatures(&mut self, p: &Payload, now: u64) -> Result<(), Reason> {
        if let Some(device_key) = self.verified.device_key(&p.credential) {
            // Known credential: its issuer key must still be trusted and in its window.
            issuer_key_in_force(p, &self.trusted, now)?;
            return verify_device_signature(p, device_key);
        }
        let device_key = verify_issuer_signature(p, &self.trusted, now)?;
        // Remembered once the issuer's signature holds, whatever the phone's: a forged QR
        // over a real credential costs one check the next time too.
        self.verified.insert(p.credential, device_key);
        verify_device_signature(p, &device_key)
    }
}
