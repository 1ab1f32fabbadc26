package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// RetentionStore finds the runs whose artifacts and logs run retention
// deletes, and deletes them a bounded batch per transaction.
type RetentionStore interface {
	// ExpireRuns marks up to limit runs expired and returns their ids: runs
	// that ended before endedBefore and whose output is not in use (see
	// expirableRuns). Selection and marking are one statement, so a run
	// cannot come into use between them.
	ExpireRuns(ctx context.Context, endedBefore time.Time, limit int) ([]int64, error)
	// ExpiredRunsHolding lists, oldest first, up to limit expired runs
	// after afterID that still have log lines or artifact rows: those
	// whose deletion has not finished (the store or the blob store failed
	// mid-way, or the server stopped).
	ExpiredRunsHolding(ctx context.Context, afterID int64, limit int) ([]int64, error)
	// DeleteRunLogs deletes a run's log lines and reports how many lines
	// and bytes of text went.
	DeleteRunLogs(ctx context.Context, runID int64) (lines, bytes int64, err error)
	// ArtifactNamedElsewhere reports whether a run other than runID has an
	// artifact with this digest (artifacts are content-addressed, so runs
	// share blobs).
	ArtifactNamedElsewhere(ctx context.Context, sha256 string, runID int64) (bool, error)
	// DeleteRunArtifacts deletes a run's artifact rows (not the blobs).
	DeleteRunArtifacts(ctx context.Context, runID int64) (int64, error)
}

var _ RetentionStore = (*DB)(nil)

// expirableRuns selects the ended runs, before the time bound as the first
// argument, whose output nothing still needs. Kept are:
//   - runs not ended (queued, running, waiting for an approval, retried);
//   - each app's newest successful run, the one a person goes back to;
//   - runs that registered a task definition revision in use: one a
//     service runs, any task set of its layout runs (a blue/green
//     deployment's kept blue, its green), an in-progress deployment goes
//     from or to, or a rollback would return to (the starting point of the
//     service's newest completed deployment of another revision, as
//     deploy's rollbackTarget picks it).
func (db *DB) expirableRuns() string {
	return `WITH in_use(family, revision) AS (
		SELECT family, revision FROM services
		UNION ` + db.dialectSQL(
		`SELECT json_extract(s.value, '$.family'), json_extract(s.value, '$.revision')
			FROM services v, json_each(NULLIF(v.layout, ''), '$.sets') s`,
		`SELECT s->>'family', (s->>'revision')::bigint
			FROM services v, jsonb_path_query(NULLIF(v.layout, '')::jsonb, '$.sets[*]') s`) + `
		UNION SELECT from_family, from_revision FROM deployments WHERE state = '` + DeployInProgress + `'
		UNION SELECT to_family, to_revision FROM deployments WHERE state = '` + DeployInProgress + `'
		UNION SELECT d.from_family, d.from_revision FROM services v JOIN deployments d ON d.id = (
			SELECT MAX(x.id) FROM deployments x WHERE x.app = v.app AND x.env = v.env AND x.service = v.name
				AND x.created_at >= v.created_at AND x.from_family <> '' AND x.state = '` + DeployCompleted + `'
				AND (x.phase = 'BlueKept' OR x.from_family <> x.to_family OR x.from_revision <> x.to_revision))
	), newest_success(id) AS (
		SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY app ORDER BY ended_at DESC, id DESC) AS n
			FROM runs WHERE state = '` + RunSucceeded + `') ranked WHERE n = 1
	)
	SELECT r.id FROM runs r
	WHERE r.expired_at IS NULL AND r.ended_at IS NOT NULL AND r.ended_at < ?
		AND r.id NOT IN (SELECT id FROM newest_success)
		AND r.id NOT IN (SELECT t.run_id FROM taskdefs t JOIN in_use u ON u.family = t.family AND u.revision = t.revision
			WHERE t.run_id IS NOT NULL)
	ORDER BY r.id LIMIT ?`
}

func (db *DB) ExpireRuns(ctx context.Context, endedBefore time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := db.tx(ctx, func(tx *Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE runs SET expired_at = ? WHERE id IN (`+db.expirableRuns()+`) RETURNING id`,
			toDB(now()), toDB(endedBefore), limit)
		if err != nil {
			return err
		}
		ids, err = collectIDs(rows)
		return err
	})
	return ids, err
}

func (db *DB) ExpiredRunsHolding(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT r.id FROM runs r WHERE r.expired_at IS NOT NULL AND r.id > ?
		AND (EXISTS (SELECT 1 FROM artifacts a WHERE a.run_id = r.id)
			OR EXISTS (SELECT 1 FROM actions a JOIN log_lines l ON l.action_id = a.id WHERE a.run_id = r.id))
		ORDER BY r.id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, err
	}
	return collectIDs(rows)
}

func collectIDs(rows *sql.Rows) ([]int64, error) {
	return collect(rows, func(row scanner) (int64, error) {
		var id int64
		err := row.Scan(&id)
		return id, err
	})
}

// runLogDeleteBatch bounds one transaction of DeleteRunLogs, so a run
// with a huge log never holds the single writer for long.
const runLogDeleteBatch = 5000

func (db *DB) DeleteRunLogs(ctx context.Context, runID int64) (lines, bytes int64, err error) {
	for {
		var n, b int64
		err := db.tx(ctx, func(tx *Tx) error {
			n, b = 0, 0
			rows, err := tx.QueryContext(ctx, `DELETE FROM log_lines WHERE id IN (
				SELECT l.id FROM actions a JOIN log_lines l ON l.action_id = a.id WHERE a.run_id = ? LIMIT ?)
				RETURNING `+db.dialectSQL(`length(CAST(line AS BLOB))`, `octet_length(line)`), runID, runLogDeleteBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var size int64
				if err := rows.Scan(&size); err != nil {
					return err
				}
				n++
				b += size
			}
			return rows.Err()
		})
		if err != nil {
			return lines, bytes, err
		}
		lines, bytes = lines+n, bytes+b
		if n < runLogDeleteBatch {
			return lines, bytes, nil
		}
	}
}

func (db *DB) ArtifactNamedElsewhere(ctx context.Context, sha256 string, runID int64) (bool, error) {
	var one int
	err := db.read.QueryRowContext(ctx, `SELECT 1 FROM artifacts WHERE sha256 = ? AND run_id <> ? LIMIT 1`, sha256, runID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (db *DB) DeleteRunArtifacts(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE run_id = ?`, runID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
