package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// TaskDefRevision is one registered revision of a task definition family.
type TaskDefRevision struct {
	Family       string          `json:"family"`
	Revision     int             `json:"revision"`
	Body         json.RawMessage `json:"task_definition"`
	Status       string          `json:"status"` // ACTIVE or INACTIVE
	RegisteredAt time.Time       `json:"registered_at"`
	RegisteredBy string          `json:"registered_by"`
	// RunID is the pipeline run whose deploy action registered it (0: not
	// a run); run retention keeps that run while the revision is in use.
	RunID int64 `json:"run_id,omitempty"`
}

// LoadBalancer is how a service is reached through the load balancer.
type LoadBalancer struct {
	ContainerName       string `json:"container_name"`
	ContainerPort       int    `json:"container_port"`
	ListenerPort        int    `json:"listener_port"`
	TestListenerPort    int    `json:"test_listener_port,omitempty"`
	HealthCheckPath     string `json:"health_check_path"`
	HealthCheckInterval string `json:"health_check_interval"`
	HealthCheckTimeout  string `json:"health_check_timeout"`
	HealthyThreshold    int    `json:"healthy_threshold"`
	UnhealthyThreshold  int    `json:"unhealthy_threshold"`
	Matcher             string `json:"matcher"`
	DeregistrationDelay string `json:"deregistration_delay"`
	// Host claims a host ("api.example.com", "*.example.com") on the shared
	// listeners (server --http-listen, --https-listen), optionally only
	// under PathPrefix, ordered by Priority as ALB listener rules are;
	// TestHost serves a blue/green deployment's test traffic there.
	Host       string `json:"host,omitempty"`
	PathPrefix string `json:"path_prefix,omitempty"`
	Priority   int    `json:"priority,omitempty"`
	TestHost   string `json:"test_host,omitempty"`
	// HTTPS serves the hosts on the HTTPS listener too, with a brought
	// certificate or one from ACME; RedirectHTTPS sends plain-HTTP clients
	// there, and HSTS tells browsers to stay.
	HTTPS         bool `json:"https,omitempty"`
	RedirectHTTPS bool `json:"redirect_https,omitempty"`
	HSTS          bool `json:"hsts,omitempty"`
}

// Service keeps N tasks of one task definition revision running in an environment.
type Service struct {
	App          string        `json:"app"`
	Env          string        `json:"environment"`
	Name         string        `json:"name"`
	Family       string        `json:"family"`
	Revision     int           `json:"revision"`
	Desired      int           `json:"desired_count"`
	LoadBalancer *LoadBalancer `json:"load_balancer,omitempty"`
	Layout       *Layout       `json:"layout,omitempty"`
	// Autoscaling is kept apart from the rest: only SetAutoscaling and
	// AutoScale write it, so a deployment's update of the service cannot undo it.
	Autoscaling *Autoscaling `json:"autoscaling,omitempty"`
	// AutoscaledOutAt and AutoscaledInAt are when auto scaling last raised
	// and lowered the desired count; only AutoScale writes them.
	AutoscaledOutAt time.Time `json:"autoscaled_out_at,omitzero"`
	AutoscaledInAt  time.Time `json:"autoscaled_in_at,omitzero"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Autoscaling is target tracking, as ECS service auto scaling does it with
// its predefined metrics: requests per task as the load balancer counts them
// (ALBRequestCountPerTarget), and the tasks' mean CPU and memory use as a
// share of what their task definition reserves. At least one target is set;
// with several, the one that asks for the most tasks wins.
type Autoscaling struct {
	MinCount int `json:"min_count"`
	MaxCount int `json:"max_count"`
	// TargetRequestsPerSecond is the rate each task should serve.
	TargetRequestsPerSecond float64 `json:"target_requests_per_second,omitempty"`
	// TargetCPUPercent and TargetMemoryPercent are the mean use the tasks
	// should run at, in percent of their reservation.
	TargetCPUPercent    float64 `json:"target_cpu_percent,omitempty"`
	TargetMemoryPercent float64 `json:"target_memory_percent,omitempty"`
	// Window is how far back the rate is measured; durations such as "60s".
	Window           string `json:"window"`
	ScaleOutCooldown string `json:"scale_out_cooldown"`
	ScaleInCooldown  string `json:"scale_in_cooldown"`
}

// TargetsText names the targets tracked, such as "50 requests/s per task,
// CPU 60%".
func (a Autoscaling) TargetsText() string {
	var parts []string
	if a.TargetRequestsPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%g requests/s per task", a.TargetRequestsPerSecond))
	}
	if a.TargetCPUPercent > 0 {
		parts = append(parts, fmt.Sprintf("CPU %g%%", a.TargetCPUPercent))
	}
	if a.TargetMemoryPercent > 0 {
		parts = append(parts, fmt.Sprintf("memory %g%%", a.TargetMemoryPercent))
	}
	return strings.Join(parts, ", ")
}

// TaskSet is a group of tasks of one revision registered in one target group.
type TaskSet struct {
	Group    string `json:"group"` // the target group: tg1 or tg2
	Family   string `json:"family"`
	Revision int    `json:"revision"`
	Desired  int    `json:"desired"`
	// Generation is the rolling deployment that replaces the tasks of the
	// revision already running (ECS's force new deployment); 0 otherwise.
	Generation int64 `json:"generation,omitempty"`
}

// Key names the set as the reconciler's status does: "tg2/web:4", or
// "tg1/web:4@d7" for the tasks deployment 7 put in place of their like.
func (s TaskSet) Key() string {
	if s.Generation != 0 {
		return fmt.Sprintf("%s/%s:%d@d%d", s.Group, s.Family, s.Revision, s.Generation)
	}
	return fmt.Sprintf("%s/%s:%d", s.Group, s.Family, s.Revision)
}

// Weight is a target group's share of production traffic.
type Weight struct {
	Group  string `json:"group"`
	Weight int    `json:"weight"`
}

// Layout is what the reconciler keeps running and how traffic is routed. A
// service without a deployment in progress has one task set in its active
// group with all the traffic.
type Layout struct {
	Sets []TaskSet `json:"sets"`
	Prod []Weight  `json:"prod"`
	Test string    `json:"test"` // group the test listener routes to
}

// DefaultGroup is a new service's target group.
const DefaultGroup = "tg1"

// ScaleServing sets the count of the task sets that carry production
// traffic; a blue/green deployment's kept blue set keeps its own, since a
// rollback restores it at the service's count.
func (l *Layout) ScaleServing(n int) {
	for i, set := range l.Sets {
		for _, w := range l.Prod {
			if w.Group == set.Group && w.Weight > 0 {
				l.Sets[i].Desired = n
			}
		}
	}
}

// EffectiveLayout returns the stored layout, or the steady one.
func (s Service) EffectiveLayout() Layout {
	if s.Layout != nil && len(s.Layout.Sets) > 0 {
		return *s.Layout
	}
	return Layout{Sets: []TaskSet{{Group: DefaultGroup, Family: s.Family, Revision: s.Revision, Desired: s.Desired}},
		Prod: []Weight{{Group: DefaultGroup, Weight: 100}}, Test: DefaultGroup}
}

// ServiceEvent is an ECS-style service event. Like ECS's "unable to place
// a task", one that repeats the service's newest event word for word is
// counted on it rather than added, so a service that cannot start its
// tasks shows one line, not one per backoff.
type ServiceEvent struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"` // its first occurrence
	Message string    `json:"message"`
	// Count is how many times it happened in a row; LastAt is the last
	// time (At when it happened once).
	Count  int       `json:"count"`
	LastAt time.Time `json:"last_at"`
}

// RuntimeStore keeps task definitions, services and their events.
type RuntimeStore interface {
	RegisterTaskDef(ctx context.Context, family string, body []byte, by string) (TaskDefRevision, error)
	GetTaskDef(ctx context.Context, family string, revision int) (TaskDefRevision, error)
	ListTaskDefs(ctx context.Context, family string) ([]TaskDefRevision, error)
	DeregisterTaskDef(ctx context.Context, family string, revision int) error
	CreateService(ctx context.Context, s Service) (Service, error)
	UpdateService(ctx context.Context, s Service) (Service, error)
	GetService(ctx context.Context, app, env, name string) (Service, error)
	ListServices(ctx context.Context, app, env string) ([]Service, error)
	DeleteService(ctx context.Context, app, env, name string) error
	AddServiceEvent(ctx context.Context, app, env, name, message string) error
	ListServiceEvents(ctx context.Context, app, env, name string, limit int) ([]ServiceEvent, error)
	SetAutoscaling(ctx context.Context, app, env, name string, a *Autoscaling) error
	AutoScale(ctx context.Context, app, env, name string, from, to int) error
}

var _ RuntimeStore = (*DB)(nil)

// RegisterTaskDef stores the next revision of family.
func (db *DB) RegisterTaskDef(ctx context.Context, family string, body []byte, by string) (TaskDefRevision, error) {
	return db.registerTaskDef(ctx, TaskDefRevision{Family: family, Body: body, RegisteredBy: by})
}

// RegisterRunTaskDef stores the next revision of family as registered by
// a run's deploy action, linked to the run.
func (db *DB) RegisterRunTaskDef(ctx context.Context, family string, body []byte, runID int64) (TaskDefRevision, error) {
	return db.registerTaskDef(ctx, TaskDefRevision{Family: family, Body: body, RegisteredBy: fmt.Sprintf("run %d", runID), RunID: runID})
}

func (db *DB) registerTaskDef(ctx context.Context, rev TaskDefRevision) (TaskDefRevision, error) {
	rev.Status = "ACTIVE"
	err := db.tx(ctx, func(tx *Tx) error {
		rev.RegisteredAt = now() // on each retry: it goes with the revision read
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), 0) + 1 FROM taskdefs WHERE family = ?`, rev.Family).Scan(&rev.Revision); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO taskdefs(family, revision, body, status, registered_at, registered_by, run_id) VALUES (?, ?, ?, ?, ?, ?, NULLIF(CAST(? AS BIGINT), 0))`,
			rev.Family, rev.Revision, string(rev.Body), rev.Status, toDB(rev.RegisteredAt), rev.RegisteredBy, rev.RunID)
		return err
	})
	return rev, err
}

const taskDefCols = `family, revision, body, status, registered_at, registered_by, COALESCE(run_id, 0)`

func scanTaskDef(row scanner) (TaskDefRevision, error) {
	var t TaskDefRevision
	var body string
	var at sql.NullInt64
	if err := row.Scan(&t.Family, &t.Revision, &body, &t.Status, &at, &t.RegisteredBy, &t.RunID); err != nil {
		return t, err
	}
	t.Body = json.RawMessage(body)
	t.RegisteredAt = fromDB(at)
	return t, nil
}

// GetTaskDef returns family:revision, or the latest ACTIVE revision when revision is 0.
func (db *DB) GetTaskDef(ctx context.Context, family string, revision int) (TaskDefRevision, error) {
	var row *sql.Row
	if revision == 0 {
		row = db.read.QueryRowContext(ctx, `SELECT `+taskDefCols+` FROM taskdefs WHERE family = ? AND status = 'ACTIVE' ORDER BY revision DESC LIMIT 1`, family)
	} else {
		row = db.read.QueryRowContext(ctx, `SELECT `+taskDefCols+` FROM taskdefs WHERE family = ? AND revision = ?`, family, revision)
	}
	t, err := scanTaskDef(row)
	if errors.Is(err, sql.ErrNoRows) {
		if revision == 0 {
			return t, fmt.Errorf("task definition %s has no active revision: %w", family, ErrNotFound)
		}
		return t, fmt.Errorf("task definition %s:%d: %w", family, revision, ErrNotFound)
	}
	return t, err
}

func (db *DB) ListTaskDefs(ctx context.Context, family string) ([]TaskDefRevision, error) {
	q := `SELECT ` + taskDefCols + ` FROM taskdefs`
	args := []any{}
	if family != "" {
		q += ` WHERE family = ?`
		args = append(args, family)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY family, revision`, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanTaskDef)
}

func (db *DB) DeregisterTaskDef(ctx context.Context, family string, revision int) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE taskdefs SET status = 'INACTIVE' WHERE family = ? AND revision = ?`, family, revision)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("task definition %s:%d: %w", family, revision, ErrNotFound)
		}
		return nil
	})
}

func lbJSON(lb *LoadBalancer) string {
	if lb == nil {
		return ""
	}
	b, _ := json.Marshal(lb)
	return string(b)
}

func (db *DB) CreateService(ctx context.Context, s Service) (Service, error) {
	at := now() // one time: a new service was updated when it was made
	s.CreatedAt, s.UpdatedAt = at, at
	err := db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO services(app, env, name, family, revision, desired, load_balancer, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.App, s.Env, s.Name, s.Family, s.Revision, s.Desired, lbJSON(s.LoadBalancer), toDB(s.CreatedAt), toDB(s.UpdatedAt))
		return err
	})
	if isUniqueViolation(err) {
		return s, fmt.Errorf("service %s in %s/%s: %w", s.Name, s.App, s.Env, ErrExists)
	}
	return s, err
}

// UpdateService writes a service, except its auto scaling. A change of the
// desired count is refused (ErrConflict) while a deployment is in progress:
// the deployment sized its task sets from the count it started with.
func (db *DB) UpdateService(ctx context.Context, s Service) (Service, error) {
	s.UpdatedAt = now()
	err := db.tx(ctx, func(tx *Tx) error {
		var desired int
		err := tx.QueryRowContext(ctx, `SELECT desired FROM services WHERE app = ? AND env = ? AND name = ?`, s.App, s.Env, s.Name).Scan(&desired)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("service %s in %s/%s: %w", s.Name, s.App, s.Env, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if desired != s.Desired {
			if err := noDeploymentInProgress(ctx, tx, `app = ? AND env = ? AND service = ?`, s.App, s.Env, s.Name); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE services SET family = ?, revision = ?, desired = ?, load_balancer = ?, layout = ?, updated_at = ? WHERE app = ? AND env = ? AND name = ?`,
			s.Family, s.Revision, s.Desired, lbJSON(s.LoadBalancer), layoutJSON(s.Layout), toDB(s.UpdatedAt), s.App, s.Env, s.Name)
		return err
	})
	return s, err
}

const serviceCols = `app, env, name, family, revision, desired, load_balancer, layout, autoscaling, autoscaled_out_at, autoscaled_in_at, created_at, updated_at`

func layoutJSON(l *Layout) string {
	if l == nil {
		return ""
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func scanService(row scanner) (Service, error) {
	var s Service
	var lb, layout, autoscaling string
	var scaledOut, scaledIn, created, updated sql.NullInt64
	if err := row.Scan(&s.App, &s.Env, &s.Name, &s.Family, &s.Revision, &s.Desired, &lb, &layout, &autoscaling, &scaledOut, &scaledIn, &created, &updated); err != nil {
		return s, err
	}
	s.AutoscaledOutAt, s.AutoscaledInAt = fromDB(scaledOut), fromDB(scaledIn)
	if autoscaling != "" {
		s.Autoscaling = decodeColumn("a", autoscaling, func(a Autoscaling) Autoscaling { return a })
	}
	if layout != "" {
		s.Layout = decodeColumn("l", layout, func(l Layout) Layout {
			l.Sets, l.Prod = slices.Clone(l.Sets), slices.Clone(l.Prod)
			return l
		})
	}
	if lb != "" {
		s.LoadBalancer = decodeColumn("b", lb, func(b LoadBalancer) LoadBalancer { return b })
	}
	s.CreatedAt, s.UpdatedAt = fromDB(created), fromDB(updated)
	return s, nil
}

// decoded memoizes the services' JSON columns by their text: the
// reconciler and the deployments list every service several times a
// second, and decoding the same layouts over and over took a tenth of the
// server's CPU at 250 services. Callers get a copy of their own.
var decoded struct {
	sync.Mutex
	m map[string]any
}

func decodeColumn[T any](kind, raw string, clone func(T) T) *T {
	k := kind + raw
	decoded.Lock()
	v, ok := decoded.m[k].(T)
	decoded.Unlock()
	if !ok {
		_ = json.Unmarshal([]byte(raw), &v)
		decoded.Lock()
		if decoded.m == nil || len(decoded.m) > 4096 { // bounded: old texts go
			decoded.m = map[string]any{}
		}
		decoded.m[k] = v
		decoded.Unlock()
	}
	c := clone(v)
	return &c
}

func (db *DB) GetService(ctx context.Context, app, env, name string) (Service, error) {
	st, err := db.readStmt(ctx, `SELECT `+serviceCols+` FROM services WHERE app = ? AND env = ? AND name = ?`)
	if err != nil {
		return Service{}, err
	}
	s, err := scanService(st.QueryRowContext(ctx, app, env, name))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("service %s in %s/%s: %w", name, app, env, ErrNotFound)
	}
	return s, err
}

// ListServices lists services, optionally of one app and environment.
func (db *DB) ListServices(ctx context.Context, app, env string) ([]Service, error) {
	st, err := db.readStmt(ctx, `SELECT `+serviceCols+` FROM services WHERE (? = '' OR app = ?) AND (? = '' OR env = ?) ORDER BY app, env, name`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, app, app, env, env)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanService)
}

func (db *DB) DeleteService(ctx context.Context, app, env, name string) error {
	return db.tx(ctx, func(tx *Tx) error {
		if err := noDeploymentInProgress(ctx, tx, `app = ? AND env = ? AND service = ?`, app, env, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM services WHERE app = ? AND env = ? AND name = ?`, app, env, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("service %s in %s/%s: %w", name, app, env, ErrNotFound)
		}
		// A service made again under this name starts a fresh event list, as in ECS.
		_, err = tx.ExecContext(ctx, `DELETE FROM service_events WHERE app = ? AND env = ? AND service = ?`, app, env, name)
		return err
	})
}

// AddServiceEvent records message as the service's newest event, or counts
// it on that event when it is the same message. Only the newest one counts
// repeats, so an event in between starts a new row and the list still tells
// what happened in which order.
func (db *DB) AddServiceEvent(ctx context.Context, app, env, name, message string) error {
	return db.tx(ctx, func(tx *Tx) error {
		// The time is taken in the transaction, again on each retry, and a
		// repeat never moves last_at back: adds that race (several servers
		// on one PostgreSQL) commit in another order than they read the clock.
		at := toDB(now())
		res, err := tx.ExecContext(ctx, `UPDATE service_events SET count = count + 1,
				last_at = CASE WHEN COALESCE(last_at, at) > ? THEN COALESCE(last_at, at) ELSE ? END
			WHERE id = (SELECT MAX(id) FROM service_events WHERE app = ? AND env = ? AND service = ?) AND message = ?`,
			at, at, app, env, name, message)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO service_events(app, env, service, at, last_at, message) VALUES (?, ?, ?, ?, ?, ?)`, app, env, name, at, at, message)
		return err
	})
}

// ListServiceEvents returns a service's newest events first, in the order
// they first happened (by id). Since only the newest event counts repeats,
// each one's LastAt comes before the At of the one listed above it.
func (db *DB) ListServiceEvents(ctx context.Context, app, env, name string, limit int) ([]ServiceEvent, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, at, COALESCE(last_at, at), count, message FROM service_events WHERE app = ? AND env = ? AND service = ? ORDER BY id DESC LIMIT ?`, app, env, name, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ServiceEvent{}
	for rows.Next() {
		var e ServiceEvent
		var at, last sql.NullInt64
		if err := rows.Scan(&e.ID, &at, &last, &e.Count, &e.Message); err != nil {
			return nil, err
		}
		e.At, e.LastAt = fromDB(at), fromDB(last)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetAutoscaling stores a service's auto scaling settings; nil turns it off.
func (db *DB) SetAutoscaling(ctx context.Context, app, env, name string, a *Autoscaling) error {
	v := ""
	if a != nil {
		b, _ := json.Marshal(a)
		v = string(b)
	}
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE services SET autoscaling = ?, updated_at = ? WHERE app = ? AND env = ? AND name = ?`, v, toDB(now()), app, env, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("service %s in %s/%s: %w", name, app, env, ErrNotFound)
		}
		return nil
	})
}

// AutoScale changes a service's desired count from one count to another,
// with the task sets that carry production traffic, and records when it
// scaled out or in, in one transaction that refuses (ErrConflict) when the
// count has moved meanwhile or a deployment is in progress: those own the
// count until they end.
func (db *DB) AutoScale(ctx context.Context, app, env, name string, from, to int) error {
	return db.tx(ctx, func(tx *Tx) error {
		if err := noDeploymentInProgress(ctx, tx, `app = ? AND env = ? AND service = ?`, app, env, name); err != nil {
			return err
		}
		s, err := scanService(tx.QueryRowContext(ctx, `SELECT `+serviceCols+` FROM services WHERE app = ? AND env = ? AND name = ?`, app, env, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("service %s in %s/%s: %w", name, app, env, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if s.Desired != from {
			return Conflictf("service %s in %s/%s: desired count is %d, not %d", name, app, env, s.Desired, from)
		}
		if s.Layout != nil {
			s.Layout.ScaleServing(to)
		}
		scaledAt := "autoscaled_out_at"
		if to < from {
			scaledAt = "autoscaled_in_at"
		}
		at := toDB(now())
		_, err = tx.ExecContext(ctx, `UPDATE services SET desired = ?, layout = ?, updated_at = ?, `+scaledAt+` = ? WHERE app = ? AND env = ? AND name = ?`,
			to, layoutJSON(s.Layout), at, at, app, env, name)
		return err
	})
}
