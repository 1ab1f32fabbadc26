package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Variable is a value an action exported for later actions of its run.
type Variable struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	Value  string `json:"value"`
}

// Report is the totals of one report group of an action.
type Report struct {
	ActionID    int64    `json:"action_id"`
	Group       string   `json:"group"`
	Total       int      `json:"total"`
	Passed      int      `json:"passed"`
	Failed      int      `json:"failed"`
	Skipped     int      `json:"skipped"`
	FailedTests []string `json:"failed_tests"`
}

// Transition is a disabled stage transition: runs wait before that stage.
type Transition struct {
	App        string    `json:"app"`
	Stage      string    `json:"stage"`
	Reason     string    `json:"reason"`
	DisabledBy string    `json:"disabled_by"`
	DisabledAt time.Time `json:"disabled_at"`
}

// OutputStore keeps what actions leave for later ones and for people.
type OutputStore interface {
	PutVariables(ctx context.Context, runID int64, vars []Variable) error
	ListVariables(ctx context.Context, runID int64) ([]Variable, error)
	PutReport(ctx context.Context, runID int64, r Report) error
	ListReports(ctx context.Context, runID int64) ([]Report, error)
	DisableTransition(ctx context.Context, t Transition) error
	EnableTransition(ctx context.Context, app, stage string) error
	GetTransition(ctx context.Context, app, stage string) (Transition, error)
	ListTransitions(ctx context.Context, app string) ([]Transition, error)
}

var _ OutputStore = (*DB)(nil)

func (db *DB) PutVariables(ctx context.Context, runID int64, vars []Variable) error {
	return db.tx(ctx, func(tx *Tx) error {
		for _, v := range vars {
			if _, err := tx.ExecContext(ctx, `INSERT INTO run_variables(run_id, action, name, value) VALUES (?, ?, ?, ?)
				ON CONFLICT(run_id, action, name) DO UPDATE SET value = excluded.value`, runID, v.Action, v.Name, v.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) ListVariables(ctx context.Context, runID int64) ([]Variable, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT action, name, value FROM run_variables WHERE run_id = ? ORDER BY `+db.dialectSQL("rowid", "seq"), runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Variable{}
	for rows.Next() {
		var v Variable
		if err := rows.Scan(&v.Action, &v.Name, &v.Value); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (db *DB) PutReport(ctx context.Context, runID int64, r Report) error {
	names, _ := json.Marshal(r.FailedTests)
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO reports(run_id, action_id, report_group, total, passed, failed, skipped, failed_tests) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(action_id, report_group) DO UPDATE SET total = excluded.total, passed = excluded.passed, failed = excluded.failed, skipped = excluded.skipped, failed_tests = excluded.failed_tests`,
			runID, r.ActionID, r.Group, r.Total, r.Passed, r.Failed, r.Skipped, string(names))
		return err
	})
}

func (db *DB) ListReports(ctx context.Context, runID int64) ([]Report, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT action_id, report_group, total, passed, failed, skipped, failed_tests FROM reports WHERE run_id = ? ORDER BY action_id, report_group`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Report{}
	for rows.Next() {
		var r Report
		var names string
		if err := rows.Scan(&r.ActionID, &r.Group, &r.Total, &r.Passed, &r.Failed, &r.Skipped, &names); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(names), &r.FailedTests)
		if r.FailedTests == nil { // stored from a nil slice as null: a list encodes as []
			r.FailedTests = []string{}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (db *DB) DisableTransition(ctx context.Context, t Transition) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO transitions(app, stage, reason, disabled_by, disabled_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(app, stage) DO UPDATE SET reason = excluded.reason, disabled_by = excluded.disabled_by, disabled_at = excluded.disabled_at`,
			t.App, t.Stage, t.Reason, t.DisabledBy, toDB(now()))
		return err
	})
}

func (db *DB) EnableTransition(ctx context.Context, app, stage string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM transitions WHERE app = ? AND stage = ?`, app, stage)
		return err
	})
}

func (db *DB) GetTransition(ctx context.Context, app, stage string) (Transition, error) {
	var t Transition
	var at sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT app, stage, reason, disabled_by, disabled_at FROM transitions WHERE app = ? AND stage = ?`, app, stage).
		Scan(&t.App, &t.Stage, &t.Reason, &t.DisabledBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("transition to %s: %w", stage, ErrNotFound)
	}
	t.DisabledAt = fromDB(at)
	return t, err
}

func (db *DB) ListTransitions(ctx context.Context, app string) ([]Transition, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT app, stage, reason, disabled_by, disabled_at FROM transitions WHERE app = ? ORDER BY stage`, app)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Transition{}
	for rows.Next() {
		var t Transition
		var at sql.NullInt64
		if err := rows.Scan(&t.App, &t.Stage, &t.Reason, &t.DisabledBy, &at); err != nil {
			return nil, err
		}
		t.DisabledAt = fromDB(at)
		out = append(out, t)
	}
	return out, rows.Err()
}
