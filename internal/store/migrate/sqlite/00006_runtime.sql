-- 6: runtime — task definitions, services, service events
-- +goose Up
CREATE TABLE taskdefs (
	family TEXT NOT NULL,
	revision INTEGER NOT NULL,
	body TEXT NOT NULL,
	status TEXT NOT NULL,
	registered_at INTEGER NOT NULL,
	registered_by TEXT NOT NULL,
	PRIMARY KEY (family, revision)
);
CREATE TABLE services (
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	env TEXT NOT NULL,
	name TEXT NOT NULL,
	family TEXT NOT NULL,
	revision INTEGER NOT NULL,
	desired INTEGER NOT NULL,
	load_balancer TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (app, env, name)
);
CREATE TABLE service_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL,
	env TEXT NOT NULL,
	service TEXT NOT NULL,
	at INTEGER NOT NULL,
	message TEXT NOT NULL
);
CREATE INDEX service_events_svc ON service_events(app, env, service, id);
