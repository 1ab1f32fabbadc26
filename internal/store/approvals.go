package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
	// ApprovalCancelled: the run ended (cancelled, superseded, restarted) before a decision.
	ApprovalCancelled = "cancelled"
)

// Approval is one request for a person's decision and, once made, its audit record.
type Approval struct {
	ID          int64      `json:"id"`
	RunID       int64      `json:"run_id"`
	ActionID    int64      `json:"action_id"`
	Stage       string     `json:"stage"`
	Action      string     `json:"action"`
	State       string     `json:"state"`
	Message     string     `json:"message,omitempty"`
	ReviewURL   string     `json:"review_url,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	Deadline    time.Time  `json:"deadline"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	Comment     string     `json:"comment,omitempty"`
}

// ApprovalStore keeps approval requests and decisions.
type ApprovalStore interface {
	// OpenApproval creates the action's approval request. With resume it
	// returns the action's latest request instead when there is one, so a
	// resumed wait keeps its deadline and sees a decision made meanwhile.
	OpenApproval(ctx context.Context, a Approval, resume bool) (Approval, bool, error)
	GetApproval(ctx context.Context, id int64) (Approval, error)
	ListApprovals(ctx context.Context, runID int64) ([]Approval, error)
	// DecideApproval records a decision on the run's pending approval;
	// ErrConflict when none is pending.
	DecideApproval(ctx context.Context, runID int64, state, by, comment string) (Approval, error)
	CloseApproval(ctx context.Context, id int64, state, by, comment string) (bool, error)
}

var _ ApprovalStore = (*DB)(nil)

const approvalCols = `id, run_id, action_id, stage, action, state, message, review_url, requested_at, deadline, decided_by, decided_at, comment`

func scanApproval(row scanner) (Approval, error) {
	var a Approval
	var req, deadline, decided sql.NullInt64
	err := row.Scan(&a.ID, &a.RunID, &a.ActionID, &a.Stage, &a.Action, &a.State, &a.Message, &a.ReviewURL, &req, &deadline, &a.DecidedBy, &decided, &a.Comment)
	a.RequestedAt, a.Deadline = fromDB(req), fromDB(deadline)
	if decided.Valid {
		t := fromDB(decided)
		a.DecidedAt = &t
	}
	return a, err
}

func (db *DB) OpenApproval(ctx context.Context, a Approval, resume bool) (Approval, bool, error) {
	created := false
	// The deadline as stored, so the request returned is the one read back.
	a.Deadline = a.Deadline.UTC().Truncate(time.Microsecond)
	err := db.tx(ctx, func(tx *Tx) error {
		created = false // an attempt whose commit failed may have set it
		if resume {
			got, err := scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE action_id = ? ORDER BY id DESC LIMIT 1`, a.ActionID))
			if err == nil {
				a = got
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		// A new request supersedes any the action left open.
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = 'slipway', decided_at = ?, comment = 'superseded by a new request' WHERE action_id = ? AND state = ?`,
			ApprovalCancelled, toDB(now()), a.ActionID, ApprovalPending); err != nil {
			return err
		}
		a.State, a.RequestedAt = ApprovalPending, now()
		if err := tx.QueryRowContext(ctx, `INSERT INTO approvals(run_id, action_id, stage, action, state, message, review_url, requested_at, deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			a.RunID, a.ActionID, a.Stage, a.Action, a.State, a.Message, a.ReviewURL, toDB(a.RequestedAt), toDB(a.Deadline)).Scan(&a.ID); err != nil {
			return err
		}
		created = true
		return nil
	})
	return a, created, err
}

func (db *DB) GetApproval(ctx context.Context, id int64) (Approval, error) {
	a, err := scanApproval(db.read.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("approval %d: %w", id, ErrNotFound)
	}
	return a, err
}

func (db *DB) ListApprovals(ctx context.Context, runID int64) ([]Approval, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanApproval)
}

func (db *DB) DecideApproval(ctx context.Context, runID int64, state, by, comment string) (Approval, error) {
	var a Approval
	err := db.tx(ctx, func(tx *Tx) error {
		var err error
		a, err = scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE run_id = ? AND state = ?
			AND action_id IN (SELECT id FROM actions WHERE state = ?) ORDER BY id LIMIT 1`, runID, ApprovalPending, RunWaiting))
		if errors.Is(err, sql.ErrNoRows) {
			return Conflictf("run %d is not waiting for an approval", runID)
		}
		if err != nil {
			return err
		}
		at := now()
		a.State, a.DecidedBy, a.DecidedAt, a.Comment = state, by, &at, comment
		_, err = tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, comment = ? WHERE id = ?`, state, by, toDB(at), comment, a.ID)
		return err
	})
	return a, err
}

// CloseApproval ends one approval if it is still pending (a timeout or a
// cancelled run); it reports whether it did.
func (db *DB) CloseApproval(ctx context.Context, id int64, state, by, comment string) (bool, error) {
	closed := false
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, comment = ? WHERE id = ? AND state = ?`,
			state, by, toDB(now()), comment, id, ApprovalPending)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		closed = n > 0
		return nil
	})
	return closed, err
}
