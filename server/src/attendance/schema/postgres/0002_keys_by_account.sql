-- A check-in key is its member's account's: a member who signs in again (a new device id) or
-- restores a backup onto a new phone keeps the handbook key and goes on checking in with it,
-- so one key may serve several devices of one account. Each device still signs with one key
-- only (a modified app cannot bring fresh keys for absent friends), and evidence signed with a
-- key another account used first never counts.
DROP INDEX check_in_keys_by_key;
CREATE TABLE check_in_member_keys(member_key BYTEA PRIMARY KEY, account_id TEXT NOT NULL);
INSERT INTO check_in_member_keys(member_key, account_id)
    SELECT k.member_key, d.account_id FROM check_in_keys k JOIN devices d ON d.id = k.device_id;
