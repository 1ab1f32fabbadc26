package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Server is one slipway server process sharing this database.
type Server struct {
	ID          string     `json:"id"`
	Host        string     `json:"host"`
	URL         string     `json:"url"`
	Version     string     `json:"version"`
	StartedAt   time.Time  `json:"started_at"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
	// Leases are the leases this server holds now.
	Leases []Lease `json:"leases"`
}

// Lease gives one server a loop at a time until it expires unrenewed.
type Lease struct {
	Name       string    `json:"name"`
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// ClusterStore is the servers' registry and their leases.
type ClusterStore interface {
	RegisterServer(ctx context.Context, s Server) (Server, error)
	SetServerURL(ctx context.Context, id, url string) error
	Heartbeat(ctx context.Context, id string) error
	StopServer(ctx context.Context, id string) error
	ListServers(ctx context.Context, since time.Duration) ([]Server, error)
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	ListLeases(ctx context.Context) ([]Lease, error)
}

var _ ClusterStore = (*DB)(nil)

// clock is the database's time in Unix microseconds: every server compares
// lease times on the one clock they share.
func (db *DB) clock() string {
	return db.dialectSQL(`CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)`,
		`CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000 AS BIGINT)`)
}

// RegisterServer records a starting server; its times are the database's.
func (db *DB) RegisterServer(ctx context.Context, s Server) (Server, error) {
	var started int64
	err := db.control.QueryRowContext(ctx, `INSERT INTO servers(id, host, url, version, started_at, heartbeat_at) VALUES (?, ?, ?, ?, `+db.clock()+`, `+db.clock()+`)
		RETURNING started_at`, s.ID, s.Host, s.URL, s.Version).Scan(&started)
	if err != nil {
		return s, err
	}
	s.StartedAt = time.UnixMicro(started).UTC()
	s.HeartbeatAt = s.StartedAt
	return s, nil
}

// SetServerURL records where a registered server answers, once it knows.
func (db *DB) SetServerURL(ctx context.Context, id, url string) error {
	res, err := db.control.ExecContext(ctx, `UPDATE servers SET url = ?, heartbeat_at = `+db.clock()+` WHERE id = ?`, url, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Heartbeat says the server is alive; ErrNotFound if it was never
// registered or has said it stopped.
func (db *DB) Heartbeat(ctx context.Context, id string) error {
	res, err := db.control.ExecContext(ctx, `UPDATE servers SET heartbeat_at = `+db.clock()+` WHERE id = ? AND stopped_at IS NULL`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// StopServer records a clean stop and gives up the server's leases, so
// another server takes its loops at once rather than after they expire.
func (db *DB) StopServer(ctx context.Context, id string) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE servers SET stopped_at = `+db.clock()+` WHERE id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE holder = ?`, id)
		return err
	})
}

// PruneServers deletes the rows of servers silent for longer than age.
func (db *DB) PruneServers(ctx context.Context, age time.Duration) error {
	_, err := db.control.ExecContext(ctx, `DELETE FROM servers WHERE heartbeat_at < `+db.clock()+` - ?`, age.Microseconds())
	return err
}

// ListServers lists the servers heard from within since (all when 0),
// newest first, each with the leases it holds. It only reads.
func (db *DB) ListServers(ctx context.Context, since time.Duration) ([]Server, error) {
	window := int64(1<<62 - 1)
	if since > 0 {
		window = since.Microseconds()
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, host, url, version, started_at, heartbeat_at, stopped_at FROM servers
		WHERE heartbeat_at >= `+db.clock()+` - ? ORDER BY started_at DESC, id`, window)
	if err != nil {
		return nil, err
	}
	servers, err := collect(rows, func(row scanner) (Server, error) {
		var s Server
		var started, beat int64
		var stopped sql.NullInt64
		if err := row.Scan(&s.ID, &s.Host, &s.URL, &s.Version, &started, &beat, &stopped); err != nil {
			return s, err
		}
		s.StartedAt, s.HeartbeatAt = time.UnixMicro(started).UTC(), time.UnixMicro(beat).UTC()
		if stopped.Valid {
			t := fromDB(stopped)
			s.StoppedAt = &t
		}
		s.Leases = []Lease{}
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	leases, err := db.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	for i := range servers {
		for _, l := range leases {
			if l.Holder == servers[i].ID {
				servers[i].Leases = append(servers[i].Leases, l)
			}
		}
	}
	return servers, nil
}

// AcquireLease takes the lease name for holder, or renews it if holder has
// it, for ttl from now on the database's clock. It is false, with the
// current lease, when another holder's lease has not expired. One
// statement, so two servers racing for a free lease cannot both win.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	now := db.clock()
	var l Lease
	var acquired, renewed, expires int64
	err := db.control.QueryRowContext(ctx, `INSERT INTO leases(name, holder, acquired_at, renewed_at, expires_at) VALUES (?, ?, `+now+`, `+now+`, `+now+` + ?)
		ON CONFLICT(name) DO UPDATE SET
			acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END,
			holder = excluded.holder, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.renewed_at
		RETURNING name, holder, acquired_at, renewed_at, expires_at`, name, holder, ttl.Microseconds()).
		Scan(&l.Name, &l.Holder, &acquired, &renewed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		cur, err := db.lease(ctx, name)
		return cur, false, err
	}
	if err != nil {
		return l, false, err
	}
	l.AcquiredAt, l.RenewedAt, l.ExpiresAt = time.UnixMicro(acquired).UTC(), time.UnixMicro(renewed).UTC(), time.UnixMicro(expires).UTC()
	return l, true, nil
}

// ForgetLeases drops every lease: for a server that knows no other can
// share its database (SQLite, under the data directory's lock).
func (db *DB) ForgetLeases(ctx context.Context) error {
	_, err := db.write.ExecContext(ctx, `DELETE FROM leases`)
	return err
}

// ReleaseLease gives the lease up if holder has it.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := db.control.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
	return err
}

const leaseCols = `name, holder, acquired_at, renewed_at, expires_at`

func scanLease(row scanner) (Lease, error) {
	var l Lease
	var acquired, renewed, expires int64
	err := row.Scan(&l.Name, &l.Holder, &acquired, &renewed, &expires)
	l.AcquiredAt, l.RenewedAt, l.ExpiresAt = time.UnixMicro(acquired).UTC(), time.UnixMicro(renewed).UTC(), time.UnixMicro(expires).UTC()
	return l, err
}

func (db *DB) lease(ctx context.Context, name string) (Lease, error) {
	l, err := scanLease(db.read.QueryRowContext(ctx, `SELECT `+leaseCols+` FROM leases WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return l, ErrNotFound
	}
	return l, err
}

// ListLeases lists the leases not yet expired, by name.
func (db *DB) ListLeases(ctx context.Context) ([]Lease, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+leaseCols+` FROM leases WHERE expires_at >= `+db.clock()+` ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanLease)
}
