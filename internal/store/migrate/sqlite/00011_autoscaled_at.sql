-- 11: when auto scaling last scaled each service out and in, so its
-- cooldowns outlast a restart
-- +goose Up
ALTER TABLE services ADD COLUMN autoscaled_out_at INTEGER;
ALTER TABLE services ADD COLUMN autoscaled_in_at INTEGER;
