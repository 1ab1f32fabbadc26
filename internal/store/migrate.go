package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released entry: append a new one.
var migrations = []string{
	// 1: foundation
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		role TEXT NOT NULL,
		hash BLOB NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		last_used_at INTEGER,
		revoked_at INTEGER
	 );`,
	// 2: source — apps, environments, push events, runs
	`CREATE TABLE apps (
		name TEXT PRIMARY KEY,
		registry_repo TEXT NOT NULL,
		source_url TEXT NOT NULL DEFAULT '',
		webhook_secret BLOB,
		created_at INTEGER NOT NULL
	 );
	 CREATE TABLE environments (
		app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
		name TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (app, name)
	 );
	 CREATE TABLE runs (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
		state TEXT NOT NULL,
		trigger TEXT NOT NULL,
		ref TEXT NOT NULL,
		commit_sha TEXT NOT NULL,
		event_id INTEGER,
		reason TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		started_at INTEGER,
		ended_at INTEGER
	 );
	 CREATE INDEX runs_app ON runs(app, id);
	 CREATE TABLE push_events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
		source TEXT NOT NULL,
		ref TEXT NOT NULL,
		old_sha TEXT NOT NULL,
		new_sha TEXT NOT NULL,
		pushed_by TEXT NOT NULL,
		delivery_id TEXT NOT NULL DEFAULT '',
		outcome TEXT NOT NULL,
		reason TEXT NOT NULL DEFAULT '',
		run_id INTEGER,
		created_at INTEGER NOT NULL
	 );
	 CREATE INDEX push_events_app ON push_events(app, id);
	 CREATE TABLE webhook_deliveries (
		delivery_id TEXT PRIMARY KEY,
		app TEXT NOT NULL,
		received_at INTEGER NOT NULL
	 );`,
	// 3: pipeline execution — actions, logs, artifacts
	`CREATE TABLE actions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		stage_index INTEGER NOT NULL,
		stage TEXT NOT NULL,
		name TEXT NOT NULL,
		type TEXT NOT NULL,
		run_order INTEGER NOT NULL,
		state TEXT NOT NULL,
		reason TEXT NOT NULL DEFAULT '',
		exit_code INTEGER,
		started_at INTEGER,
		ended_at INTEGER,
		UNIQUE (run_id, stage, name)
	 );
	 CREATE TABLE log_lines (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
		at INTEGER NOT NULL,
		line TEXT NOT NULL
	 );
	 CREATE INDEX log_lines_action ON log_lines(action_id, id);
	 CREATE TABLE artifacts (
		run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		action_id INTEGER,
		sha256 TEXT NOT NULL,
		size INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (run_id, name)
	 );
	 ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT '';`,
	// 4: exported variables, test reports, stage transitions
	`CREATE TABLE run_variables (
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
	 );`,
	// 5: registry — pushed manifests, tags, referrers, per-repository policy
	`CREATE TABLE images (
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
	 );`,
	// 6: runtime — task definitions, services, service events
	`CREATE TABLE taskdefs (
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
	 CREATE INDEX service_events_svc ON service_events(app, env, service, id);`,
	// 7: deployments — task-set layouts and durable deployment records
	`ALTER TABLE services ADD COLUMN layout TEXT NOT NULL DEFAULT '';
	 CREATE TABLE deployments (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app TEXT NOT NULL,
		env TEXT NOT NULL,
		service TEXT NOT NULL,
		strategy TEXT NOT NULL,
		config TEXT NOT NULL,
		from_family TEXT NOT NULL,
		from_revision INTEGER NOT NULL,
		to_family TEXT NOT NULL,
		to_revision INTEGER NOT NULL,
		settings TEXT NOT NULL,
		state TEXT NOT NULL,
		phase TEXT NOT NULL,
		green_weight INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		ended_at INTEGER
	 );
	 CREATE INDEX deployments_svc ON deployments(app, env, service, id);
	 CREATE TABLE deployment_events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
		at INTEGER NOT NULL,
		phase TEXT NOT NULL,
		green_weight INTEGER NOT NULL,
		message TEXT NOT NULL
	 );`,
	// 8: secrets (sealed values, one row per version), approvals,
	// notification channels (sealed settings) and their deliveries
	`CREATE TABLE secrets (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL,
		app TEXT NOT NULL DEFAULT '',
		env TEXT NOT NULL DEFAULT '',
		version INTEGER NOT NULL,
		sealed BLOB NOT NULL,
		created_by TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		UNIQUE (name, app, env, version)
	 );
	 CREATE TABLE approvals (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
		stage TEXT NOT NULL,
		action TEXT NOT NULL,
		state TEXT NOT NULL,
		message TEXT NOT NULL DEFAULT '',
		review_url TEXT NOT NULL DEFAULT '',
		requested_at INTEGER NOT NULL,
		deadline INTEGER NOT NULL,
		decided_by TEXT NOT NULL DEFAULT '',
		decided_at INTEGER,
		comment TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX approvals_run ON approvals(run_id, id);
	 CREATE TABLE notify_channels (
		app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
		name TEXT NOT NULL,
		type TEXT NOT NULL,
		events TEXT NOT NULL,
		target TEXT NOT NULL,
		sealed BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (app, name)
	 );
	 CREATE TABLE notify_deliveries (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		app TEXT NOT NULL,
		channel TEXT NOT NULL,
		event TEXT NOT NULL,
		payload TEXT NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		next_at INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		ended_at INTEGER
	 );
	 CREATE INDEX notify_deliveries_app ON notify_deliveries(app, id);
	 CREATE INDEX notify_deliveries_pending ON notify_deliveries(state, next_at);`,
	// 9: web UI sessions (the cookie holds a random id; only its hash is kept)
	`CREATE TABLE sessions (
		id_hash BLOB PRIMARY KEY,
		token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
		csrf TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	 );`,
	// 10: service auto scaling (target tracking settings, JSON)
	`ALTER TABLE services ADD COLUMN autoscaling TEXT NOT NULL DEFAULT '';`,
	// 11: when auto scaling last scaled each service out and in, so its
	// cooldowns outlast a restart
	`ALTER TABLE services ADD COLUMN autoscaled_out_at INTEGER;
	 ALTER TABLE services ADD COLUMN autoscaled_in_at INTEGER;`,
	// 12: where an app's builds run and whether they reach the Docker
	// engine (admin settings); tokens limited to one app, and to the registry
	`ALTER TABLE apps ADD COLUMN build_executor TEXT NOT NULL DEFAULT 'sandbox';
	 ALTER TABLE apps ADD COLUMN build_docker INTEGER NOT NULL DEFAULT 0;
	 ALTER TABLE tokens ADD COLUMN app TEXT NOT NULL DEFAULT '';
	 ALTER TABLE tokens ADD COLUMN registry_only INTEGER NOT NULL DEFAULT 0;`,
	// 13: a source URL's credentials sealed apart from the URL, so the URL
	// can be shown and handed to git without them; digests of accepted
	// webhook payloads, so a replay is refused after a restart too
	`ALTER TABLE apps ADD COLUMN source_credentials BLOB;
	 CREATE TABLE webhook_payloads (
		app TEXT NOT NULL,
		sha256 BLOB NOT NULL,
		accepted_at INTEGER NOT NULL,
		PRIMARY KEY (app, sha256)
	 );
	 CREATE INDEX webhook_payloads_accepted ON webhook_payloads(accepted_at);`,
	// 14: task containers' output, kept past the containers as CloudWatch
	// Logs keeps it: a log group and stream per line, "at" in Unix
	// nanoseconds as the engine dates lines, so a collector resumes after
	// the last line it stored; indexes for a service's lines in order, a
	// container's newest line, and the retention sweep
	`CREATE TABLE task_log_lines (
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
	 CREATE INDEX task_log_lines_at ON task_log_lines(at);`,
	// 15: a token limited to an app may be limited to one of its
	// environments too
	`ALTER TABLE tokens ADD COLUMN env TEXT NOT NULL DEFAULT '';`,
	// 16: a service event repeated word for word is counted on its row, as
	// ECS does, with when it last happened; rows before it happened once
	`ALTER TABLE service_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
	 ALTER TABLE service_events ADD COLUMN last_at INTEGER;
	 UPDATE service_events SET last_at = at;`,
	// 17: TLS certificates for the load balancer's hosts, brought or
	// obtained by ACME; keys sealed with the master key; the ACME account
	// key of each directory, sealed too
	`CREATE TABLE certificates (
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
	 );`,
	// 18: run retention. When a run's artifacts and logs were deleted; the
	// run that registered a task definition revision (the deploy action's
	// registered_by "run N" before this), so a run whose revision a service
	// still runs or can roll back to is kept; artifacts by digest, to tell
	// whether another run still names a blob before deleting it
	`ALTER TABLE runs ADD COLUMN expired_at INTEGER;
	 ALTER TABLE taskdefs ADD COLUMN run_id INTEGER;
	 UPDATE taskdefs SET run_id = CAST(substr(registered_by, 5) AS INTEGER)
		WHERE registered_by GLOB 'run [1-9]*' AND substr(registered_by, 5) NOT GLOB '*[^0-9]*';
	 CREATE INDEX taskdefs_run ON taskdefs(run_id) WHERE run_id IS NOT NULL;
	 CREATE INDEX artifacts_sha256 ON artifacts(sha256);`,
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.write.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade slipway", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, toDB(now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion reports the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
