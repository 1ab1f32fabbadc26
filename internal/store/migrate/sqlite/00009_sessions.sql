-- 9: web UI sessions (the cookie holds a random id; only its hash is kept)
-- +goose Up
CREATE TABLE sessions (
	id_hash BLOB PRIMARY KEY,
	token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
	csrf TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
