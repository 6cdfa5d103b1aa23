-- An inspector's device is enrolled apart from validators: it reads the feed and uploads
-- inspections, never taps (a scan it only checked must not be charged as a ride).
ALTER TABLE enrolments ADD COLUMN inspector INTEGER NOT NULL DEFAULT 0;
ALTER TABLE validators ADD COLUMN inspector INTEGER NOT NULL DEFAULT 0;
