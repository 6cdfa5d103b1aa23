-- A member's check-ins by meeting: an upload again is recognised whatever the member's cell
-- is now.
CREATE INDEX check_ins_by_member ON check_ins(account_id, meeting_id);
