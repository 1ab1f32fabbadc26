-- 18: run retention. When a run's artifacts and logs were deleted; the
-- run that registered a task definition revision (the deploy action's
-- registered_by "run N" before this), so a run whose revision a service
-- still runs or can roll back to is kept; artifacts by digest, to tell
-- whether another run still names a blob before deleting it
-- +goose Up
ALTER TABLE runs ADD COLUMN expired_at INTEGER;
ALTER TABLE taskdefs ADD COLUMN run_id INTEGER;
UPDATE taskdefs SET run_id = CAST(substr(registered_by, 5) AS INTEGER)
	WHERE registered_by GLOB 'run [1-9]*' AND substr(registered_by, 5) NOT GLOB '*[^0-9]*';
CREATE INDEX taskdefs_run ON taskdefs(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX artifacts_sha256 ON artifacts(sha256);
