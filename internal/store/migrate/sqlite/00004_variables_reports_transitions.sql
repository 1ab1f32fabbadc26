-- 4: exported variables, test reports, stage transitions
-- +goose Up
CREATE TABLE run_variables (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	action TEXT NOT NULL,
	name TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (run_id, action, name)
);
CREATE TABLE reports (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
	report_group TEXT NOT NULL,
	total INTEGER NOT NULL,
	passed INTEGER NOT NULL,
	failed INTEGER NOT NULL,
	skipped INTEGER NOT NULL,
	failed_tests TEXT NOT NULL,
	PRIMARY KEY (action_id, report_group)
);
CREATE TABLE transitions (
	app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	stage TEXT NOT NULL,
	reason TEXT NOT NULL,
	disabled_by TEXT NOT NULL,
	disabled_at INTEGER NOT NULL,
	PRIMARY KEY (app, stage)
);
