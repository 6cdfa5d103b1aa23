-- Which phone key made each QR used: a QR made for a time ahead of that phone's other QRs
-- (its clock set forward to make a screenshot for someone else) shows against them.
ALTER TABLE qr_uses ADD COLUMN device_key_hash BLOB;
