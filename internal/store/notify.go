package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/internal/secret/redact"
)

// Channel is a notification channel of an app. Its settings (URLs, keys,
// passwords) are sealed; Target is a display form without credentials.
// The store keeps and returns Target and a delivery's LastError with every
// URL in them redacted (redact.URLs): the API and the web UI show
// them as they come from here, and a Slack URL's path is its credential.
type Channel struct {
	App       string    `json:"app"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Events    []string  `json:"events"`
	Target    string    `json:"target"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one notice to one channel and what became of it.
type Delivery struct {
	ID        int64      `json:"id"`
	App       string     `json:"app"`
	Channel   string     `json:"channel"`
	Event     string     `json:"event"`
	Payload   string     `json:"-"`
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	NextAt    time.Time  `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// NotifyStore keeps channels and the durable delivery queue.
type NotifyStore interface {
	PutChannel(ctx context.Context, c Channel, sealed []byte) error
	ListChannels(ctx context.Context, app string) ([]Channel, error)
	SealedChannel(ctx context.Context, app, name string) (Channel, []byte, error)
	DeleteChannel(ctx context.Context, app, name string) error
	EnqueueDeliveries(ctx context.Context, ds []Delivery) error
	DueDeliveries(ctx context.Context, at time.Time, limit int) ([]Delivery, error)
	// NextDeliveryAt is when the earliest pending delivery is due (false: none pending).
	NextDeliveryAt(ctx context.Context) (time.Time, bool, error)
	UpdateDelivery(ctx context.Context, d Delivery) error
	ListDeliveries(ctx context.Context, app string, p Page) ([]Delivery, error)
}

var _ NotifyStore = (*DB)(nil)

func (db *DB) PutChannel(ctx context.Context, c Channel, sealed []byte) error {
	events, _ := json.Marshal(c.Events)
	return db.tx(ctx, func(tx *Tx) error {
		at := toDB(now())
		_, err := tx.ExecContext(ctx, `INSERT INTO notify_channels(app, name, type, events, target, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(app, name) DO UPDATE SET type = excluded.type, events = excluded.events, target = excluded.target, sealed = excluded.sealed, updated_at = excluded.updated_at`,
			c.App, c.Name, c.Type, string(events), redact.URLs(c.Target), sealed, at, at)
		return err
	})
}

const channelCols = `app, name, type, events, target, created_at, updated_at`

func scanChannel(row scanner) (Channel, error) {
	var c Channel
	var events string
	var created, updated sql.NullInt64
	err := row.Scan(&c.App, &c.Name, &c.Type, &events, &c.Target, &created, &updated)
	c.Target = redact.URLs(c.Target) // rows written before targets were scrubbed
	_ = json.Unmarshal([]byte(events), &c.Events)
	c.CreatedAt, c.UpdatedAt = fromDB(created), fromDB(updated)
	return c, err
}

func (db *DB) ListChannels(ctx context.Context, app string) ([]Channel, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+channelCols+` FROM notify_channels WHERE app = ? ORDER BY name`, app)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanChannel)
}

func (db *DB) SealedChannel(ctx context.Context, app, name string) (Channel, []byte, error) {
	var sealed []byte
	row := db.read.QueryRowContext(ctx, `SELECT `+channelCols+`, sealed FROM notify_channels WHERE app = ? AND name = ?`, app, name)
	var c Channel
	var events string
	var created, updated sql.NullInt64
	err := row.Scan(&c.App, &c.Name, &c.Type, &events, &c.Target, &created, &updated, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil, fmt.Errorf("notification channel %s of app %s: %w", name, app, ErrNotFound)
	}
	c.Target = redact.URLs(c.Target)
	_ = json.Unmarshal([]byte(events), &c.Events)
	c.CreatedAt, c.UpdatedAt = fromDB(created), fromDB(updated)
	return c, sealed, err
}

func (db *DB) DeleteChannel(ctx context.Context, app, name string) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM notify_channels WHERE app = ? AND name = ?`, app, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("notification channel %s of app %s: %w", name, app, ErrNotFound)
		}
		return nil
	})
}

func (db *DB) EnqueueDeliveries(ctx context.Context, ds []Delivery) error {
	return db.tx(ctx, func(tx *Tx) error {
		at := now()
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notify_deliveries(app, channel, event, payload, state, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				d.App, d.Channel, d.Event, d.Payload, DeliveryPending, toDB(at), toDB(at)); err != nil {
				return err
			}
		}
		return nil
	})
}

const deliveryCols = `id, app, channel, event, payload, state, attempts, last_error, next_at, created_at, ended_at`

func scanDelivery(row scanner) (Delivery, error) {
	var d Delivery
	var next, created, ended sql.NullInt64
	err := row.Scan(&d.ID, &d.App, &d.Channel, &d.Event, &d.Payload, &d.State, &d.Attempts, &d.LastError, &next, &created, &ended)
	d.LastError = redact.URLs(d.LastError) // rows written before errors were scrubbed
	d.NextAt, d.CreatedAt = fromDB(next), fromDB(created)
	if ended.Valid {
		t := fromDB(ended)
		d.EndedAt = &t
	}
	return d, err
}

func (db *DB) DueDeliveries(ctx context.Context, at time.Time, limit int) ([]Delivery, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE state = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?`,
		DeliveryPending, toDB(at), limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDelivery)
}

func (db *DB) NextDeliveryAt(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := db.read.QueryRowContext(ctx, `SELECT MIN(next_at) FROM notify_deliveries WHERE state = ?`, DeliveryPending).Scan(&next); err != nil {
		return time.Time{}, false, err
	}
	return fromDB(next), next.Valid, nil
}

// UpdateDelivery records an attempt's outcome. Its error may quote what a
// remote server said: see storableText.
func (db *DB) UpdateDelivery(ctx context.Context, d Delivery) error {
	var ended any
	if d.EndedAt != nil {
		ended = toDB(*d.EndedAt)
	}
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE notify_deliveries SET state = ?, attempts = ?, last_error = ?, next_at = ?, ended_at = ? WHERE id = ?`,
			d.State, d.Attempts, storableText(redact.URLs(d.LastError)), toDB(d.NextAt), ended, d.ID)
		return err
	})
}

func (db *DB) ListDeliveries(ctx context.Context, app string, p Page) ([]Delivery, error) {
	p = p.normalize()
	rows, err := db.read.QueryContext(ctx, `SELECT `+deliveryCols+` FROM notify_deliveries WHERE app = ? AND (CAST(? AS BIGINT) = 0 OR id < ?) ORDER BY id DESC LIMIT ?`,
		app, p.Before, p.Before, p.Limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDelivery)
}
