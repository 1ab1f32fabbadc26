-- 17: TLS certificates for the load balancer's hosts, brought or
-- obtained by ACME; keys sealed with the master key; the ACME account
-- key of each directory, sealed too
-- +goose Up
CREATE TABLE certificates (
	name TEXT PRIMARY KEY,
	hosts TEXT NOT NULL,
	cert_pem TEXT NOT NULL,
	key_sealed BLOB NOT NULL,
	not_before INTEGER NOT NULL,
	not_after INTEGER NOT NULL,
	issuer TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	source TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER
);
CREATE TABLE acme_accounts (
	directory TEXT PRIMARY KEY,
	key_sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
