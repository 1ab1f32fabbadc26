-- 12: where an app's builds run and whether they reach the Docker
-- engine (admin settings); tokens limited to one app, and to the registry
-- +goose Up
ALTER TABLE apps ADD COLUMN build_executor TEXT NOT NULL DEFAULT 'sandbox';
ALTER TABLE apps ADD COLUMN build_docker INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN app TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN registry_only INTEGER NOT NULL DEFAULT 0;
