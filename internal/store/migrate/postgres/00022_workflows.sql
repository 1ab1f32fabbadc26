-- 22: GitHub Actions workflows. A run names the workflow file it executes
-- ('' = slipway.yaml) and its workflow_dispatch inputs (a JSON object, ''
-- when none); an action keeps its job's step summary (markdown) and the
-- annotations its steps raised (a JSON array, '' when none). One push can
-- start a run per workflow: runs_event finds an event's runs.
-- +goose Up
ALTER TABLE runs ADD COLUMN workflow TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN inputs TEXT NOT NULL DEFAULT '';
ALTER TABLE actions ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE actions ADD COLUMN annotations TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_event ON runs(event_id);
