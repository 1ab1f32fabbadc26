-- 13: a source URL's credentials sealed apart from the URL, so the URL
-- can be shown and handed to git without them; digests of accepted
-- webhook payloads, so a replay is refused after a restart too
-- +goose Up
ALTER TABLE apps ADD COLUMN source_credentials BLOB;
CREATE TABLE webhook_payloads (
	app TEXT NOT NULL,
	sha256 BLOB NOT NULL,
	accepted_at INTEGER NOT NULL,
	PRIMARY KEY (app, sha256)
);
CREATE INDEX webhook_payloads_accepted ON webhook_payloads(accepted_at);
