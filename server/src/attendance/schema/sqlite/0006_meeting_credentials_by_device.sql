-- The phone each meeting credential was issued to: revoking that phone revokes them (a stolen
-- secretary's phone signs no more counted QRs). NULL for credentials issued before this step.
ALTER TABLE meeting_credentials ADD COLUMN device_id TEXT;
CREATE INDEX meeting_credentials_by_device ON meeting_credentials(device_id) WHERE device_id IS NOT NULL;
