-- 3: pipeline execution — actions, logs, artifacts
-- +goose Up
CREATE TABLE actions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	stage_index INTEGER NOT NULL,
	stage TEXT NOT NULL,
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	run_order INTEGER NOT NULL,
	state TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	exit_code INTEGER,
	started_at INTEGER,
	ended_at INTEGER,
	UNIQUE (run_id, stage, name)
);
CREATE TABLE log_lines (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
	at INTEGER NOT NULL,
	line TEXT NOT NULL
);
CREATE INDEX log_lines_action ON log_lines(action_id, id);
CREATE TABLE artifacts (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	action_id INTEGER,
	sha256 TEXT NOT NULL,
	size INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (run_id, name)
);
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT '';
