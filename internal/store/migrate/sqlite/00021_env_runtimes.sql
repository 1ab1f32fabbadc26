-- 21: environments whose tasks run elsewhere than on the local Docker
-- engine (a Kubernetes namespace), with their sealed client configuration;
-- retired: of a deleted app, kept until its tasks there are gone
-- +goose Up
CREATE TABLE env_runtimes (
	app TEXT NOT NULL,
	env TEXT NOT NULL,
	kind TEXT NOT NULL,
	context TEXT NOT NULL DEFAULT '',
	namespace TEXT NOT NULL DEFAULT '',
	config_sealed BLOB NOT NULL,
	updated_by TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	retired INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (app, env)
);
