-- Denials are kept for good (a denied card or key gets no credential again), but a list names
-- only those still listed: these indexes find them, and count them against the list's cap,
-- without reading every denial ever made.
CREATE INDEX deny_cards_by_until ON deny_cards(until);
CREATE INDEX deny_devices_by_until ON deny_devices(until);
