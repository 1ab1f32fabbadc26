-- 5: registry — pushed manifests, tags, referrers, per-repository policy
-- +goose Up
CREATE TABLE images (
	repo TEXT NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	artifact_type TEXT NOT NULL DEFAULT '',
	size INTEGER NOT NULL,
	subject TEXT NOT NULL DEFAULT '',
	annotations TEXT NOT NULL DEFAULT '{}',
	pushed_at INTEGER NOT NULL,
	pushed_by TEXT NOT NULL,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX images_subject ON images(repo, subject);
CREATE TABLE image_tags (
	repo TEXT NOT NULL,
	tag TEXT NOT NULL,
	digest TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (repo, tag)
);
CREATE TABLE repo_policies (
	repo TEXT PRIMARY KEY,
	immutable_tags INTEGER NOT NULL DEFAULT 0,
	keep_last INTEGER NOT NULL DEFAULT 0,
	expire_untagged_days INTEGER NOT NULL DEFAULT 0
);
