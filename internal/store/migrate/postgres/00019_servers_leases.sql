-- 19: the servers sharing this database, each with its heartbeat, and the
-- leases that give one of them a loop at a time (times in microseconds of
-- the database's own clock, so servers' clocks need not agree)
-- +goose Up
CREATE TABLE servers (
	id TEXT PRIMARY KEY,
	host TEXT NOT NULL,
	url TEXT NOT NULL,
	version TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	heartbeat_at BIGINT NOT NULL,
	stopped_at BIGINT
);
CREATE TABLE leases (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	acquired_at BIGINT NOT NULL,
	renewed_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
