-- 7: deployments — task-set layouts and durable deployment records
-- +goose Up
ALTER TABLE services ADD COLUMN layout TEXT NOT NULL DEFAULT '';
CREATE TABLE deployments (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL,
	env TEXT NOT NULL,
	service TEXT NOT NULL,
	strategy TEXT NOT NULL,
	config TEXT NOT NULL,
	from_family TEXT NOT NULL,
	from_revision INTEGER NOT NULL,
	to_family TEXT NOT NULL,
	to_revision INTEGER NOT NULL,
	settings TEXT NOT NULL,
	state TEXT NOT NULL,
	phase TEXT NOT NULL,
	green_weight INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	ended_at INTEGER
);
CREATE INDEX deployments_svc ON deployments(app, env, service, id);
CREATE TABLE deployment_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
	at INTEGER NOT NULL,
	phase TEXT NOT NULL,
	green_weight INTEGER NOT NULL,
	message TEXT NOT NULL
);
