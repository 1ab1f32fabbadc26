-- 14: task containers' output, kept past the containers as CloudWatch
-- Logs keeps it: a log group and stream per line, "at" in Unix
-- nanoseconds as the engine dates lines, so a collector resumes after
-- the last line it stored; indexes for a service's lines in order, a
-- container's newest line, and the retention sweep
-- +goose Up
CREATE TABLE task_log_lines (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT NOT NULL,
	env TEXT NOT NULL,
	service TEXT NOT NULL,
	task_id TEXT NOT NULL,
	container TEXT NOT NULL,
	log_group TEXT NOT NULL,
	log_stream TEXT NOT NULL,
	source TEXT NOT NULL,
	at INTEGER NOT NULL,
	line TEXT NOT NULL
);
CREATE INDEX task_log_lines_service ON task_log_lines(app, env, service, id);
CREATE INDEX task_log_lines_container ON task_log_lines(task_id, container, at);
CREATE INDEX task_log_lines_at ON task_log_lines(at);
