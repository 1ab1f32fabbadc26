-- 16: a service event repeated word for word is counted on its row, as
-- ECS does, with when it last happened; rows before it happened once
-- +goose Up
ALTER TABLE service_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE service_events ADD COLUMN last_at INTEGER;
UPDATE service_events SET last_at = at;
