-- Ticket inspections, as inspectors record them and as their scans verify here.
CREATE TABLE inspections(
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, paired BIGINT NOT NULL, tapped_at BIGINT,
    card_id BIGINT, evidence TEXT NOT NULL, recorded_at BIGINT NOT NULL,
    PRIMARY KEY(validator_id, seq));
