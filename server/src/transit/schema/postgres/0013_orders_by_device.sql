-- A device's orders, for its revocation: the passes it paid for and never collected are
-- returned.
CREATE INDEX orders_by_device ON orders(device_id, status);
