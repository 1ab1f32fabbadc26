package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Deployment states.
const (
	DeployInProgress = "IN_PROGRESS"
	DeployCompleted  = "COMPLETED"
	DeployFailed     = "FAILED"
	DeployRolledBack = "ROLLED_BACK"
	DeployStopped    = "STOPPED"
)

// Deployment is one rollout of a service to a task definition revision.
type Deployment struct {
	ID           int64           `json:"id"`
	App          string          `json:"app"`
	Env          string          `json:"environment"`
	Service      string          `json:"service"`
	Strategy     string          `json:"strategy"` // rolling or blue-green
	Config       string          `json:"config"`
	FromFamily   string          `json:"from_family"`
	FromRevision int             `json:"from_revision"`
	ToFamily     string          `json:"to_family"`
	ToRevision   int             `json:"to_revision"`
	Settings     json.RawMessage `json:"settings"`
	State        string          `json:"state"`
	Phase        string          `json:"phase"`
	GreenWeight  int             `json:"green_weight"`
	Reason       string          `json:"reason,omitempty"`
	CreatedBy    string          `json:"created_by"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	EndedAt      *time.Time      `json:"ended_at,omitempty"`
}

// First reports a service's first rollout: the deployment recorded when
// the service was created, which starts from nothing.
func (d Deployment) First() bool { return d.FromFamily == "" }

// From names the revision the deployment starts from, or says there is none.
func (d Deployment) From() string {
	if d.First() {
		return "(new service)"
	}
	return fmt.Sprintf("%s:%d", d.FromFamily, d.FromRevision)
}

// createdMessage opens a deployment's timeline.
func createdMessage(d Deployment) string {
	if d.First() {
		return fmt.Sprintf("service created: rolling out %s:%d", d.ToFamily, d.ToRevision)
	}
	return fmt.Sprintf("deployment created: %s %s → %s:%d (%s)", d.Strategy, d.From(), d.ToFamily, d.ToRevision, d.Config)
}

// DeploymentEvent is one step of a deployment's timeline.
type DeploymentEvent struct {
	At          time.Time `json:"at"`
	Phase       string    `json:"phase"`
	GreenWeight int       `json:"green_weight"`
	Message     string    `json:"message"`
}

// DeploymentStore keeps deployments durably.
type DeploymentStore interface {
	CreateDeployment(ctx context.Context, d Deployment) (Deployment, error)
	GetDeployment(ctx context.Context, id int64) (Deployment, error)
	ListDeployments(ctx context.Context, app, env, service string, limit int) ([]Deployment, error)
	ActiveDeployments(ctx context.Context) ([]Deployment, error)
	UpdateDeployment(ctx context.Context, d Deployment, event string) error
	DeploymentEvents(ctx context.Context, id int64) ([]DeploymentEvent, error)
}

var _ DeploymentStore = (*DB)(nil)

const deploymentCols = `id, app, env, service, strategy, config, from_family, from_revision, to_family, to_revision, settings, state, phase, green_weight, reason, created_by, created_at, updated_at, ended_at`

func scanDeployment(row scanner) (Deployment, error) {
	var d Deployment
	var settings string
	var created, updated, ended sql.NullInt64
	if err := row.Scan(&d.ID, &d.App, &d.Env, &d.Service, &d.Strategy, &d.Config, &d.FromFamily, &d.FromRevision, &d.ToFamily, &d.ToRevision,
		&settings, &d.State, &d.Phase, &d.GreenWeight, &d.Reason, &d.CreatedBy, &created, &updated, &ended); err != nil {
		return d, err
	}
	d.Settings = json.RawMessage(settings)
	d.CreatedAt, d.UpdatedAt = fromDB(created), fromDB(updated)
	if ended.Valid {
		t := fromDB(ended)
		d.EndedAt = &t
	}
	return d, nil
}

// noDeploymentInProgress refuses a change while a deployment matching where
// runs: one deployment per service at a time, and a service (or app) goes
// only once its deployment has ended, or that deployment would be left in
// progress with nobody to finish it. A service's first rollout holds
// nothing back: it has no earlier revision to protect, and it ends itself
// when the service changes under it (a deployment, a new count, a delete).
func noDeploymentInProgress(ctx context.Context, tx *Tx, where string, args ...any) error {
	var id int64
	var service string
	err := tx.QueryRowContext(ctx, `SELECT id, service FROM deployments WHERE state = ? AND from_family != '' AND `+where+` LIMIT 1`, append([]any{DeployInProgress}, args...)...).Scan(&id, &service)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return Conflictf("deployment %d of service %s is still in progress; wait for it, or stop it with slipway deploy stop %d", id, service, id)
}

// CreateDeployment records a deployment, refusing a second one in progress for the service.
func (db *DB) CreateDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	d.State = DeployInProgress
	err := db.tx(ctx, func(tx *Tx) error {
		// One time, taken again on each retry: a new deployment was updated
		// when it was made, and ids and times go in the same order.
		at := now()
		d.CreatedAt, d.UpdatedAt = at, at
		if err := noDeploymentInProgress(ctx, tx, `app = ? AND env = ? AND service = ?`, d.App, d.Env, d.Service); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO deployments(app, env, service, strategy, config, from_family, from_revision, to_family, to_revision, settings, state, phase, green_weight, reason, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?, ?) RETURNING id`,
			d.App, d.Env, d.Service, d.Strategy, d.Config, d.FromFamily, d.FromRevision, d.ToFamily, d.ToRevision, string(d.Settings), d.State, d.Phase, d.CreatedBy, toDB(d.CreatedAt), toDB(d.UpdatedAt)).Scan(&d.ID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deployment_events(deployment_id, at, phase, green_weight, message) VALUES (?, ?, ?, 0, ?)`,
			d.ID, toDB(d.CreatedAt), d.Phase, createdMessage(d))
		return err
	})
	return d, err
}

func (db *DB) GetDeployment(ctx context.Context, id int64) (Deployment, error) {
	d, err := scanDeployment(db.read.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deployment %d: %w", id, ErrNotFound)
	}
	return d, err
}

func (db *DB) ListDeployments(ctx context.Context, app, env, service string, limit int) ([]Deployment, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE (? = '' OR app = ?) AND (? = '' OR env = ?) AND (? = '' OR service = ?) ORDER BY id DESC LIMIT ?`,
		app, app, env, env, service, service, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDeployment)
}

func (db *DB) ActiveDeployments(ctx context.Context) ([]Deployment, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE state = ? ORDER BY id`, DeployInProgress)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDeployment)
}

// UpdateDeployment saves state, phase and weight, and appends event to the
// timeline; a deployment that is not there is ErrNotFound.
func (db *DB) UpdateDeployment(ctx context.Context, d Deployment, event string) error {
	return db.tx(ctx, func(tx *Tx) error {
		at := now()
		var ended any
		if d.State != DeployInProgress {
			ended = toDB(at)
		}
		res, err := tx.ExecContext(ctx, `UPDATE deployments SET state = ?, phase = ?, green_weight = ?, reason = ?, updated_at = ?, ended_at = COALESCE(ended_at, ?) WHERE id = ?`,
			d.State, d.Phase, d.GreenWeight, d.Reason, toDB(at), ended, d.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("deployment %d: %w", d.ID, ErrNotFound)
		}
		if event == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deployment_events(deployment_id, at, phase, green_weight, message) VALUES (?, ?, ?, ?, ?)`, d.ID, toDB(at), d.Phase, d.GreenWeight, event)
		return err
	})
}

func (db *DB) DeploymentEvents(ctx context.Context, id int64) ([]DeploymentEvent, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT at, phase, green_weight, message FROM deployment_events WHERE deployment_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []DeploymentEvent{}
	for rows.Next() {
		var e DeploymentEvent
		var at sql.NullInt64
		if err := rows.Scan(&at, &e.Phase, &e.GreenWeight, &e.Message); err != nil {
			return nil, err
		}
		e.At = fromDB(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
