package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Run states.
const (
	RunQueued     = "queued"
	RunRunning    = "running"
	RunWaiting    = "waiting"
	RunSucceeded  = "succeeded"
	RunFailed     = "failed"
	RunCancelled  = "cancelled"
	RunSuperseded = "superseded"
)

// Run is one execution of an app's pipeline.
type Run struct {
	ID        int64      `json:"id"`
	App       string     `json:"app"`
	State     string     `json:"state"`
	Trigger   string     `json:"trigger"`
	Ref       string     `json:"ref"`
	Commit    string     `json:"commit"`
	EventID   int64      `json:"event_id,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Mode      string     `json:"mode,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// ExpiredAt is when run retention deleted the run's artifacts and logs.
	ExpiredAt *time.Time `json:"expired_at,omitempty"`
}

// PushEvent is one updated ref from a git push or a webhook delivery.
type PushEvent struct {
	ID         int64     `json:"id"`
	App        string    `json:"app"`
	Source     string    `json:"source"` // "git" or "github"
	Ref        string    `json:"ref"`
	OldSHA     string    `json:"old_sha"`
	NewSHA     string    `json:"new_sha"`
	PushedBy   string    `json:"pushed_by"`
	DeliveryID string    `json:"delivery_id,omitempty"`
	Outcome    string    `json:"outcome"` // "run", "filtered" or "error"
	Reason     string    `json:"reason,omitempty"`
	RunID      int64     `json:"run_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// PayloadSHA256, when set, is the digest of the webhook payload that
	// announced the push: RecordPush keeps it to refuse the payload again.
	PayloadSHA256 []byte `json:"-"`
}

// PayloadReplayWindow is how long an accepted webhook payload is refused
// if it comes again: GitHub redelivers deliveries up to 3 days old. After
// it, a replay is still checked against where the ref points on the source.
const PayloadReplayWindow = 72 * time.Hour

// ReplayedPayloadError is a webhook payload already accepted for the app
// within PayloadReplayWindow. It is an ErrConflict.
type ReplayedPayloadError struct {
	App    string
	SHA256 []byte
}

func (e *ReplayedPayloadError) Error() string {
	return fmt.Sprintf("push payload sha256 %x was already accepted for app %s", e.SHA256, e.App)
}

func (e *ReplayedPayloadError) Is(target error) bool { return target == ErrConflict }

// Push event outcomes.
const (
	OutcomeRun      = "run"
	OutcomeFiltered = "filtered"
	OutcomeError    = "error"
)

// RunStore keeps pipeline runs.
type RunStore interface {
	CreateRun(ctx context.Context, r Run) (Run, error)
	GetRun(ctx context.Context, id int64) (Run, error)
	ListRuns(ctx context.Context, app string, p Page) ([]Run, error)
}

// EventStore keeps push events, webhook delivery ids and payload digests.
type EventStore interface {
	RecordPush(ctx context.Context, ev PushEvent, run *Run) (PushEvent, error)
	ListPushEvents(ctx context.Context, app string, p Page) ([]PushEvent, error)
	DeliverySeen(ctx context.Context, deliveryID string) (bool, error)
	PayloadAccepted(ctx context.Context, app string, sha256 []byte) (bool, error)
}

var (
	_ RunStore   = (*DB)(nil)
	_ EventStore = (*DB)(nil)
)

const runCols = `id, app, state, trigger, ref, commit_sha, COALESCE(event_id, 0), reason, created_at, started_at, ended_at, mode, expired_at`

func scanRun(row scanner) (Run, error) {
	var r Run
	var created, started, ended, expired sql.NullInt64
	if err := row.Scan(&r.ID, &r.App, &r.State, &r.Trigger, &r.Ref, &r.Commit, &r.EventID, &r.Reason, &created, &started, &ended, &r.Mode, &expired); err != nil {
		return r, err
	}
	r.CreatedAt = fromDB(created)
	if started.Valid {
		t := fromDB(started)
		r.StartedAt = &t
	}
	if ended.Valid {
		t := fromDB(ended)
		r.EndedAt = &t
	}
	if expired.Valid {
		t := fromDB(expired)
		r.ExpiredAt = &t
	}
	return r, nil
}

func insertRun(ctx context.Context, tx *Tx, r *Run) error {
	r.CreatedAt = now()
	if r.State == "" {
		r.State = RunQueued
	}
	return tx.QueryRowContext(ctx, `INSERT INTO runs(app, state, trigger, ref, commit_sha, event_id, reason, created_at) VALUES (?, ?, ?, ?, ?, NULLIF(CAST(? AS BIGINT), 0), ?, ?) RETURNING id`,
		r.App, r.State, r.Trigger, r.Ref, r.Commit, r.EventID, r.Reason, toDB(r.CreatedAt)).Scan(&r.ID)
}

func (db *DB) CreateRun(ctx context.Context, r Run) (Run, error) {
	err := db.tx(ctx, func(tx *Tx) error { return insertRun(ctx, tx, &r) })
	return r, err
}

func (db *DB) GetRun(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(db.read.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return r, err
}

func (db *DB) ListRuns(ctx context.Context, app string, p Page) ([]Run, error) {
	p = p.normalize()
	var rows *sql.Rows
	var err error
	if app == "" {
		rows, err = db.read.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE id < ? ORDER BY id DESC LIMIT ?`, p.Before, p.Limit)
	} else {
		rows, err = db.read.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE app = ? AND id < ? ORDER BY id DESC LIMIT ?`, app, p.Before, p.Limit)
	}
	if err != nil {
		return nil, err
	}
	return collect(rows, scanRun)
}

// LatestRuns returns each app's newest run, keyed by app, in one query
// (the runs_app index makes MAX(id) per app an index scan).
func (db *DB) LatestRuns(ctx context.Context) (map[string]Run, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY app)`)
	if err != nil {
		return nil, err
	}
	runs, err := collect(rows, scanRun)
	if err != nil {
		return nil, err
	}
	latest := make(map[string]Run, len(runs))
	for _, r := range runs {
		latest[r.App] = r
	}
	return latest, nil
}

// RecordPush stores a push event and, when run is not nil, the run it
// started, in one transaction: a push is never recorded without its run,
// nor its payload accepted without its event. A repeated webhook delivery
// id fails with ErrExists, a payload accepted within PayloadReplayWindow
// with a *ReplayedPayloadError; both are ErrConflict.
func (db *DB) RecordPush(ctx context.Context, ev PushEvent, run *Run) (PushEvent, error) {
	ev.CreatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
		if ev.DeliveryID != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries(delivery_id, app, received_at) VALUES (?, ?, ?)`, ev.DeliveryID, ev.App, toDB(ev.CreatedAt)); err != nil {
				if isUniqueViolation(err) {
					return fmt.Errorf("delivery %q: %w", ev.DeliveryID, ErrExists)
				}
				return err
			}
		}
		if len(ev.PayloadSHA256) > 0 {
			// Pruning here bounds the table without a sweeper: only signed
			// payloads add rows, and each one clears what has expired.
			if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_payloads WHERE accepted_at < ?`, toDB(ev.CreatedAt.Add(-PayloadReplayWindow))); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_payloads(app, sha256, accepted_at) VALUES (?, ?, ?)`, ev.App, ev.PayloadSHA256, toDB(ev.CreatedAt)); err != nil {
				if isUniqueViolation(err) {
					return &ReplayedPayloadError{App: ev.App, SHA256: ev.PayloadSHA256}
				}
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO push_events(app, source, ref, old_sha, new_sha, pushed_by, delivery_id, outcome, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			ev.App, ev.Source, ev.Ref, ev.OldSHA, ev.NewSHA, ev.PushedBy, ev.DeliveryID, ev.Outcome, ev.Reason, toDB(ev.CreatedAt)).Scan(&ev.ID); err != nil {
			return err
		}
		if run == nil {
			return nil
		}
		run.EventID = ev.ID
		if err := insertRun(ctx, tx, run); err != nil {
			return err
		}
		ev.RunID = run.ID
		_, err := tx.ExecContext(ctx, `UPDATE push_events SET run_id = ? WHERE id = ?`, run.ID, ev.ID)
		return err
	})
	return ev, err
}

func (db *DB) ListPushEvents(ctx context.Context, app string, p Page) ([]PushEvent, error) {
	p = p.normalize()
	rows, err := db.read.QueryContext(ctx, `SELECT id, app, source, ref, old_sha, new_sha, pushed_by, delivery_id, outcome, reason, COALESCE(run_id, 0), created_at
		FROM push_events WHERE app = ? AND id < ? ORDER BY id DESC LIMIT ?`, app, p.Before, p.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PushEvent{}
	for rows.Next() {
		var e PushEvent
		var created sql.NullInt64
		if err := rows.Scan(&e.ID, &e.App, &e.Source, &e.Ref, &e.OldSHA, &e.NewSHA, &e.PushedBy, &e.DeliveryID, &e.Outcome, &e.Reason, &e.RunID, &created); err != nil {
			return nil, err
		}
		e.CreatedAt = fromDB(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PayloadAccepted reports whether a webhook payload with this digest was
// accepted for app within PayloadReplayWindow.
func (db *DB) PayloadAccepted(ctx context.Context, app string, sha256 []byte) (bool, error) {
	var one int
	err := db.read.QueryRowContext(ctx, `SELECT 1 FROM webhook_payloads WHERE app = ? AND sha256 = ? AND accepted_at >= ?`,
		app, sha256, toDB(now().Add(-PayloadReplayWindow))).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (db *DB) DeliverySeen(ctx context.Context, deliveryID string) (bool, error) {
	var one int
	err := db.read.QueryRowContext(ctx, `SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?`, deliveryID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
