-- 2: source — apps, environments, push events, runs
-- +goose Up
CREATE TABLE apps (
	name TEXT PRIMARY KEY,
	registry_repo TEXT NOT NULL,
	source_url TEXT NOT NULL DEFAULT '',
	webhook_secret BLOB,
	created_at INTEGER NOT NULL
);
CREATE TABLE environments (
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	name TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (app, name)
);
CREATE TABLE runs (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	state TEXT NOT NULL,
	trigger TEXT NOT NULL,
	ref TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	event_id INTEGER,
	reason TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	started_at INTEGER,
	ended_at INTEGER
);
CREATE INDEX runs_app ON runs(app, id);
CREATE TABLE push_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	source TEXT NOT NULL,
	ref TEXT NOT NULL,
	old_sha TEXT NOT NULL,
	new_sha TEXT NOT NULL,
	pushed_by TEXT NOT NULL,
	delivery_id TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	run_id INTEGER,
	created_at INTEGER NOT NULL
);
CREATE INDEX push_events_app ON push_events(app, id);
CREATE TABLE webhook_deliveries (
	delivery_id TEXT PRIMARY KEY,
	app TEXT NOT NULL,
	received_at INTEGER NOT NULL
);
