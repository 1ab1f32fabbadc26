package store

import (
	"context"
	"database/sql"
	"encoding/json"
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
	// Workflow is the repository path of the GitHub Actions workflow file
	// the run executes (".github/workflows/ci.yml"); "" is slipway.yaml.
	Workflow string `json:"workflow,omitempty"`
	// Inputs are the workflow_dispatch inputs the run was started with
	// (nil: none; an empty map is stored, and read back, as nil).
	Inputs map[string]string `json:"inputs,omitempty"`
}

// PushEvent is one updated ref from a git push or a webhook delivery.
type PushEvent struct {
	ID         int64  `json:"id"`
	App        string `json:"app"`
	Source     string `json:"source"` // "git" or "github"
	Ref        string `json:"ref"`
	OldSHA     string `json:"old_sha"`
	NewSHA     string `json:"new_sha"`
	PushedBy   string `json:"pushed_by"`
	DeliveryID string `json:"delivery_id,omitempty"`
	Outcome    string `json:"outcome"` // "run", "filtered" or "error"
	Reason     string `json:"reason,omitempty"`
	RunID      int64  `json:"run_id,omitempty"` // the first of RunIDs
	// RunIDs are the runs the push started, oldest first: one per
	// matching workflow (nil: none).
	RunIDs    []int64   `json:"run_ids,omitempty"`
	CreatedAt time.Time `json:"created_at"`
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
	// RecordPush stores a push event and the runs it started (nil entries
	// skipped) in one transaction.
	RecordPush(ctx context.Context, ev PushEvent, runs ...*Run) (PushEvent, error)
	ListPushEvents(ctx context.Context, app string, p Page) ([]PushEvent, error)
	DeliverySeen(ctx context.Context, deliveryID string) (bool, error)
	PayloadAccepted(ctx context.Context, app string, sha256 []byte) (bool, error)
}

var (
	_ RunStore   = (*DB)(nil)
	_ EventStore = (*DB)(nil)
)

const runCols = `id, app, state, trigger, ref, commit_sha, COALESCE(event_id, 0), reason, created_at, started_at, ended_at, mode, expired_at, workflow, inputs`

func scanRun(row scanner) (Run, error) {
	var r Run
	var created, started, ended, expired sql.NullInt64
	var inputs string
	if err := row.Scan(&r.ID, &r.App, &r.State, &r.Trigger, &r.Ref, &r.Commit, &r.EventID, &r.Reason, &created, &started, &ended, &r.Mode, &expired, &r.Workflow, &inputs); err != nil {
		return r, err
	}
	if inputs != "" {
		if err := json.Unmarshal([]byte(inputs), &r.Inputs); err != nil {
			return r, fmt.Errorf("run %d: read its inputs: %w", r.ID, err)
		}
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

// runInputs is a run's inputs as stored: a JSON object, "" for none.
func runInputs(inputs map[string]string) (string, error) {
	if len(inputs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(inputs)
	if err != nil {
		return "", fmt.Errorf("encode the run's inputs: %w", err)
	}
	return string(b), nil
}

func insertRun(ctx context.Context, tx *Tx, r *Run) error {
	inputs, err := runInputs(r.Inputs)
	if err != nil {
		return err
	}
	r.CreatedAt = now()
	if r.State == "" {
		r.State = RunQueued
	}
	r.Workflow = storableText(r.Workflow) // a path from git may be any bytes
	if len(r.Inputs) == 0 {
		r.Inputs = nil // as it reads back
	}
	return tx.QueryRowContext(ctx, `INSERT INTO runs(app, state, trigger, ref, commit_sha, event_id, reason, created_at, workflow, inputs) VALUES (?, ?, ?, ?, ?, NULLIF(CAST(? AS BIGINT), 0), ?, ?, ?, ?) RETURNING id`,
		r.App, r.State, r.Trigger, r.Ref, r.Commit, r.EventID, r.Reason, toDB(r.CreatedAt), r.Workflow, inputs).Scan(&r.ID)
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

// RecordPush stores a push event and the runs it started (one per
// matching workflow; nil entries are skipped, so a push that started none
// passes a nil run or none), in one transaction: a push is never recorded
// without its runs, nor its payload accepted without its event. Each run
// gets the event's id, and is updated in place as CreateRun returns it;
// the event returned has RunIDs, and RunID the first of them. A repeated
// webhook delivery id fails with ErrExists, a payload accepted within
// PayloadReplayWindow with a *ReplayedPayloadError; both are ErrConflict.
func (db *DB) RecordPush(ctx context.Context, ev PushEvent, runs ...*Run) (PushEvent, error) {
	ev.CreatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
		ev.RunID, ev.RunIDs = 0, nil // set afresh: PostgreSQL may run this again
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
		for _, run := range runs {
			if run == nil {
				continue
			}
			run.EventID = ev.ID
			if err := insertRun(ctx, tx, run); err != nil {
				return err
			}
			ev.RunIDs = append(ev.RunIDs, run.ID)
		}
		if len(ev.RunIDs) == 0 {
			return nil
		}
		ev.RunID = ev.RunIDs[0]
		_, err := tx.ExecContext(ctx, `UPDATE push_events SET run_id = ? WHERE id = ?`, ev.RunID, ev.ID)
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
	out, err := collect(rows, func(row scanner) (PushEvent, error) {
		var e PushEvent
		var created sql.NullInt64
		err := row.Scan(&e.ID, &e.App, &e.Source, &e.Ref, &e.OldSHA, &e.NewSHA, &e.PushedBy, &e.DeliveryID, &e.Outcome, &e.Reason, &e.RunID, &created)
		e.CreatedAt = fromDB(created)
		return e, err
	})
	if err != nil || len(out) == 0 {
		return out, err
	}
	if err := db.fillRunIDs(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// fillRunIDs sets the RunIDs of a page of events, newest first, in one
// query: the runs whose event is in the page's id range (runs_event), kept
// for the events of the page.
func (db *DB) fillRunIDs(ctx context.Context, evs []PushEvent) error {
	at := make(map[int64]int, len(evs))
	for i, e := range evs {
		at[e.ID] = i
	}
	rows, err := db.read.QueryContext(ctx, `SELECT event_id, id FROM runs WHERE event_id BETWEEN ? AND ? ORDER BY id`,
		evs[len(evs)-1].ID, evs[0].ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var event, run int64
		if err := rows.Scan(&event, &run); err != nil {
			return err
		}
		if i, ok := at[event]; ok {
			evs[i].RunIDs = append(evs[i].RunIDs, run)
		}
	}
	return rows.Err()
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
