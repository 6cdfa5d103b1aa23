-- Who published a record id, in any scope: a meeting's or a notice's id is one cell's only
-- (a member moved between cells would hold both under one id).
CREATE INDEX publishers_by_record ON publishers(collection, record_id);
