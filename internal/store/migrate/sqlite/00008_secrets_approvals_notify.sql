-- 8: secrets (sealed values, one row per version), approvals,
-- notification channels (sealed settings) and their deliveries
-- +goose Up
CREATE TABLE secrets (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL,
	app TEXT NOT NULL DEFAULT '',
	env TEXT NOT NULL DEFAULT '',
	version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (name, app, env, version)
);
CREATE TABLE approvals (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
	stage TEXT NOT NULL,
	action TEXT NOT NULL,
	state TEXT NOT NULL,
	message TEXT NOT NULL DEFAULT '',
	review_url TEXT NOT NULL DEFAULT '',
	requested_at INTEGER NOT NULL,
	deadline INTEGER NOT NULL,
	decided_by TEXT NOT NULL DEFAULT '',
	decided_at INTEGER,
	comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_run ON approvals(run_id, id);
CREATE TABLE notify_channels (
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	events TEXT NOT NULL,
	target TEXT NOT NULL,
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (app, name)
);
CREATE TABLE notify_deliveries (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL,
	channel TEXT NOT NULL,
	event TEXT NOT NULL,
	payload TEXT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	next_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	ended_at INTEGER
);
CREATE INDEX notify_deliveries_app ON notify_deliveries(app, id);
CREATE INDEX notify_deliveries_pending ON notify_deliveries(state, next_at);
