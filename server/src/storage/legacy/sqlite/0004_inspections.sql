-- Ticket inspections, as inspectors record them and as their scans verify here.
CREATE TABLE inspections(
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, paired INTEGER NOT NULL, tapped_at INTEGER,
    card_id INTEGER, evidence TEXT NOT NULL, recorded_at INTEGER NOT NULL,
    PRIMARY KEY(validator_id, seq));
