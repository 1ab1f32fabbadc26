package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is one executed action of a run.
type Action struct {
	ID         int64      `json:"id"`
	RunID      int64      `json:"run_id"`
	StageIndex int        `json:"stage_index"`
	Stage      string     `json:"stage"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	RunOrder   int        `json:"run_order"`
	State      string     `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// DeploymentID is the deployment a deploy action started (0: none yet).
	DeploymentID int64 `json:"deployment_id,omitempty"`
	// Summary is the markdown a workflow job's steps wrote to
	// $GITHUB_STEP_SUMMARY, and Annotations the messages they raised; both
	// are set by SetActionReport only.
	Summary     string       `json:"summary,omitempty"`
	Annotations []Annotation `json:"annotations,omitempty"`
}

// Annotation is a message a workflow step raised with ::error, ::warning or ::notice.
type Annotation struct {
	Level   string `json:"level"` // error, warning, notice
	Message string `json:"message"`
	Title   string `json:"title,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
}

// Where is "FILE:LINE: " (or "FILE: "), or "" for an annotation on no file:
// the prefix of its message where it is printed.
func (a Annotation) Where() string {
	switch {
	case a.File == "":
		return ""
	case a.Line > 0:
		return a.File + ":" + strconv.Itoa(a.Line) + ": "
	}
	return a.File + ": "
}

// Bounds of what SetActionReport keeps of an action's report.
const (
	// MaxActionSummary is the most bytes of a summary kept, GitHub's limit
	// for a step summary; a longer one is cut there (at a character
	// boundary) and SummaryTruncatedNote appended.
	MaxActionSummary = 1 << 20
	// MaxActionAnnotations is how many annotations are kept, the first
	// ones (GitHub keeps 10 per step and 50 per job).
	MaxActionAnnotations = 100
)

// SummaryTruncatedNote ends a summary cut at MaxActionSummary.
const SummaryTruncatedNote = "\n\n(summary truncated at 1 MiB)"

// LogLine is one line of an action's output.
type LogLine struct {
	ID       int64     `json:"id"`
	ActionID int64     `json:"action_id"`
	At       time.Time `json:"at"`
	Line     string    `json:"line"`
}

// Artifact is a named, content-addressed output of a run.
type Artifact struct {
	RunID     int64     `json:"run_id"`
	Name      string    `json:"name"`
	ActionID  int64     `json:"action_id,omitempty"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// ExecStore keeps what the pipeline engine does.
type ExecStore interface {
	// StartRun moves a queued run to running and creates its actions, atomically.
	StartRun(ctx context.Context, runID int64, mode string, actions []Action) error
	FinishRun(ctx context.Context, runID int64, state, reason string) error
	SetRunMode(ctx context.Context, runID int64, mode string) error
	ListActions(ctx context.Context, runID int64) ([]Action, error)
	// UpdateAction stores an action's state, reason, exit code and times;
	// its report (SetActionReport) is left as it is.
	UpdateAction(ctx context.Context, a Action) error
	// SetActionReport stores an action's summary and annotations, replacing
	// those it had, within MaxActionSummary and MaxActionAnnotations.
	SetActionReport(ctx context.Context, actionID int64, summary string, annotations []Annotation) error
	AppendLog(ctx context.Context, actionID int64, lines []LogLine) error
	ListLog(ctx context.Context, runID, afterID int64, limit int) ([]LogLine, error)
	PutArtifact(ctx context.Context, a Artifact) error
	ListArtifacts(ctx context.Context, runID int64) ([]Artifact, error)
	// SetRunState moves a running run between running and waiting.
	SetRunState(ctx context.Context, runID int64, state, reason string) error
	// RetryRun re-queues an ended run from stageIndex: that stage's actions
	// that did not succeed, and every action after it, run again.
	RetryRun(ctx context.Context, runID int64, stageIndex int) error
	// RunsInState lists runs of any app in one of the states, oldest first.
	RunsInState(ctx context.Context, states ...string) ([]Run, error)
	// RecoverInterrupted ends every running action and run left by a stopped server.
	RecoverInterrupted(ctx context.Context, reason string) (int, error)
}

var _ ExecStore = (*DB)(nil)

const actionCols = `id, run_id, stage_index, stage, name, type, run_order, state, reason, exit_code, started_at, ended_at, COALESCE(deployment_id, 0), summary, annotations`

func scanAction(row scanner) (Action, error) {
	var a Action
	var exit sql.NullInt64
	var started, ended sql.NullInt64
	var annotations string
	if err := row.Scan(&a.ID, &a.RunID, &a.StageIndex, &a.Stage, &a.Name, &a.Type, &a.RunOrder, &a.State, &a.Reason, &exit, &started, &ended, &a.DeploymentID, &a.Summary, &annotations); err != nil {
		return a, err
	}
	if annotations != "" {
		if err := json.Unmarshal([]byte(annotations), &a.Annotations); err != nil {
			return a, fmt.Errorf("action %d: read its annotations: %w", a.ID, err)
		}
	}
	if exit.Valid {
		c := int(exit.Int64)
		a.ExitCode = &c
	}
	if started.Valid {
		t := fromDB(started)
		a.StartedAt = &t
	}
	if ended.Valid {
		t := fromDB(ended)
		a.EndedAt = &t
	}
	return a, nil
}

func (db *DB) StartRun(ctx context.Context, runID int64, mode string, actions []Action) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, mode = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND state = ?`, RunRunning, mode, toDB(now()), runID, RunQueued)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return Conflictf("run %d is no longer queued", runID)
		}
		var existing int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM actions WHERE run_id = ?`, runID).Scan(&existing); err != nil {
			return err
		}
		if existing > 0 {
			return nil // a retried run keeps its actions
		}
		for _, a := range actions {
			if _, err := tx.ExecContext(ctx, `INSERT INTO actions(run_id, stage_index, stage, name, type, run_order, state) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				runID, a.StageIndex, a.Stage, a.Name, a.Type, a.RunOrder, RunQueued); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) SetRunMode(ctx context.Context, runID int64, mode string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET mode = ? WHERE id = ?`, mode, runID)
		return err
	})
}

// FinishRun ends a run that has not ended yet; queued actions end with it.
func (db *DB) FinishRun(ctx context.Context, runID int64, state, reason string) error {
	return db.tx(ctx, func(tx *Tx) error {
		at := toDB(now())
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, reason = ?, ended_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND ended_at IS NULL`,
			state, reason, at, at, runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return Conflictf("run %d has already ended", runID)
		}
		actionState := RunCancelled
		if state == RunSuperseded {
			actionState = RunSuperseded
		}
		_, err = tx.ExecContext(ctx, `UPDATE actions SET state = ?, reason = 'not started: run ended', ended_at = ? WHERE run_id = ? AND state = ?`, actionState, at, runID, RunQueued)
		return err
	})
}

func (db *DB) ListActions(ctx context.Context, runID int64) ([]Action, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+actionCols+` FROM actions WHERE run_id = ? ORDER BY stage_index, run_order, id`, runID)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanAction)
}

func (db *DB) UpdateAction(ctx context.Context, a Action) error {
	return db.tx(ctx, func(tx *Tx) error {
		var exit any
		if a.ExitCode != nil {
			exit = *a.ExitCode
		}
		var started, ended any
		if a.StartedAt != nil {
			started = toDB(*a.StartedAt)
		}
		if a.EndedAt != nil {
			ended = toDB(*a.EndedAt)
		}
		_, err := tx.ExecContext(ctx, `UPDATE actions SET state = ?, reason = ?, exit_code = ?, started_at = ?, ended_at = ? WHERE id = ?`,
			a.State, a.Reason, exit, started, ended, a.ID)
		return err
	})
}

func (db *DB) AppendLog(ctx context.Context, actionID int64, lines []LogLine) error {
	defer db.ringLogBell()
	rows := make([][]any, len(lines))
	for i, l := range lines {
		rows[i] = []any{actionID, toDB(l.At), storableText(l.Line)}
	}
	return db.tx(ctx, func(tx *Tx) error {
		return insertRows(ctx, tx, "log_lines", []string{"action_id", "at", "line"}, rows)
	})
}

// LogAppended returns a channel closed the next time log lines are
// committed: a follower takes it before it reads, then waits on it, and so
// sees a line as soon as it is stored rather than at its next poll.
func (db *DB) LogAppended() <-chan struct{} {
	db.logMu.Lock()
	defer db.logMu.Unlock()
	return db.logBell
}

func (db *DB) ringLogBell() {
	db.logMu.Lock()
	defer db.logMu.Unlock()
	close(db.logBell)
	db.logBell = make(chan struct{})
}

func (db *DB) ListLog(ctx context.Context, runID, afterID int64, limit int) ([]LogLine, error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	rows, err := db.read.QueryContext(ctx, `SELECT l.id, l.action_id, l.at, l.line FROM log_lines l JOIN actions a ON a.id = l.action_id
		WHERE a.run_id = ? AND l.id > ? ORDER BY l.id LIMIT ?`, runID, afterID, limit)
	if err != nil {
		return nil, err
	}
	return collectLog(rows)
}

// ListActionLog is ListLog for one action: its lines after afterID, in
// order, read through the action's own index (a run's other actions'
// lines are not read and sorted).
func (db *DB) ListActionLog(ctx context.Context, actionID, afterID int64, limit int) ([]LogLine, error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, action_id, at, line FROM log_lines WHERE action_id = ? AND id > ? ORDER BY action_id, id LIMIT ?`, actionID, afterID, limit)
	if err != nil {
		return nil, err
	}
	return collectLog(rows)
}

// ActionLogTail returns an action's last n lines, oldest first, and how
// many lines it has in all.
func (db *DB) ActionLogTail(ctx context.Context, actionID int64, n int) ([]LogLine, int, error) {
	lines, before, err := db.ActionLogBefore(ctx, actionID, math.MaxInt64, n)
	return lines, before + len(lines), err
}

// ActionLogBefore returns up to n of an action's lines stored before line
// beforeID (the last n of them, oldest first) and how many of its lines
// come before those: a page that shows a long log's end loads earlier
// lines on demand, numbered as the raw log numbers them.
func (db *DB) ActionLogBefore(ctx context.Context, actionID, beforeID int64, n int) ([]LogLine, int, error) {
	if n < 0 || n > 5000 {
		n = 5000
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, action_id, at, line FROM log_lines WHERE action_id = ? AND id < ? ORDER BY action_id DESC, id DESC LIMIT ?`, actionID, beforeID, n)
	if err != nil {
		return nil, 0, err
	}
	lines, err := collectLog(rows)
	if err != nil {
		return nil, 0, err
	}
	slices.Reverse(lines)
	if len(lines) > 0 {
		beforeID = lines[0].ID
	}
	var count int
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_lines WHERE action_id = ? AND id < ?`, actionID, beforeID).Scan(&count); err != nil {
		return nil, 0, err
	}
	return lines, count, nil
}

func collectLog(rows *sql.Rows) ([]LogLine, error) {
	defer rows.Close()
	out := []LogLine{}
	for rows.Next() {
		var l LogLine
		var at sql.NullInt64
		if err := rows.Scan(&l.ID, &l.ActionID, &at, &l.Line); err != nil {
			return nil, err
		}
		l.At = fromDB(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

func (db *DB) PutArtifact(ctx context.Context, a Artifact) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO artifacts(run_id, name, action_id, sha256, size, created_at) VALUES (?, ?, NULLIF(CAST(? AS BIGINT), 0), ?, ?, ?)
			ON CONFLICT(run_id, name) DO UPDATE SET action_id = excluded.action_id, sha256 = excluded.sha256, size = excluded.size, created_at = excluded.created_at`,
			a.RunID, a.Name, a.ActionID, a.SHA256, a.Size, toDB(now()))
		return err
	})
}

func (db *DB) ListArtifacts(ctx context.Context, runID int64) ([]Artifact, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT run_id, name, COALESCE(action_id, 0), sha256, size, created_at FROM artifacts WHERE run_id = ? ORDER BY created_at, name`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Artifact{}
	for rows.Next() {
		var a Artifact
		var at sql.NullInt64
		if err := rows.Scan(&a.RunID, &a.Name, &a.ActionID, &a.SHA256, &a.Size, &at); err != nil {
			return nil, err
		}
		a.CreatedAt = fromDB(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (db *DB) RunsInState(ctx context.Context, states ...string) ([]Run, error) {
	if len(states) == 0 {
		return []Run{}, nil // IN () is no SQL; no state, no run
	}
	q := `SELECT ` + runCols + ` FROM runs WHERE state IN (?` + strings.Repeat(",?", len(states)-1) + `) ORDER BY id`
	args := make([]any, len(states))
	for i, s := range states {
		args[i] = s
	}
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanRun)
}

// awaitsApprovalOnly matches a run whose only unfinished work is an approval
// wait: that is safe to resume after a restart.
const awaitsApprovalOnly = `EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.type = 'approval' AND a.state = '` + RunWaiting + `')
	AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state = '` + RunRunning + `')`

// followsDeploymentsOnly is a run whose running actions all follow a
// deployment they started: the deployment goes on without the server, so
// the next one follows it again and the run carries on.
const followsDeploymentsOnly = `EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state = '` + RunRunning + `')
	AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.run_id = runs.id AND a.state = '` + RunRunning + `'
		AND NOT (a.type = 'deploy' AND a.deployment_id IS NOT NULL))`

// SetActionReport stores an action's summary and annotations; an action
// that is not there is no error, as for UpdateAction. A summary longer than
// MaxActionSummary is cut there and ends with SummaryTruncatedNote; of the
// annotations, the first MaxActionAnnotations are kept. No summary and no
// annotations clear the report.
func (db *DB) SetActionReport(ctx context.Context, actionID int64, summary string, annotations []Annotation) error {
	summary = boundSummary(storableText(summary))
	stored := ""
	if len(annotations) > 0 {
		b, err := json.Marshal(annotations[:min(len(annotations), MaxActionAnnotations)])
		if err != nil {
			return fmt.Errorf("encode the annotations of action %d: %w", actionID, err)
		}
		stored = string(b)
	}
	_, err := db.write.ExecContext(ctx, `UPDATE actions SET summary = ?, annotations = ? WHERE id = ?`, summary, stored, actionID)
	return err
}

// boundSummary cuts a summary longer than MaxActionSummary bytes at the
// last character boundary within it, and says so.
func boundSummary(s string) string {
	if len(s) <= MaxActionSummary {
		return s
	}
	cut := MaxActionSummary
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + SummaryTruncatedNote
}

// SetActionDeployment records the deployment a deploy action started.
func (db *DB) SetActionDeployment(ctx context.Context, actionID, deploymentID int64) error {
	_, err := db.write.ExecContext(ctx, `UPDATE actions SET deployment_id = ? WHERE id = ?`, deploymentID, actionID)
	return err
}

func (db *DB) RecoverInterrupted(ctx context.Context, reason string) (int, error) {
	n := 0
	err := db.tx(ctx, func(tx *Tx) error {
		at := toDB(now())
		// Runs that only wait for a person stay waiting; the engine resumes them.
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = ? WHERE state IN (?, ?) AND `+awaitsApprovalOnly, RunWaiting, RunRunning, RunWaiting); err != nil {
			return err
		}
		// Every other unfinished run ends, with its actions, but for those
		// following deployments, which stay running for the engine to resume.
		interrupted := `SELECT id FROM runs WHERE state IN ('` + RunRunning + `', '` + RunWaiting + `') AND NOT (` + awaitsApprovalOnly + `)
			AND NOT (` + followsDeploymentsOnly + `)`
		if _, err := tx.ExecContext(ctx, `UPDATE actions SET state = ?, reason = ?, ended_at = ? WHERE state IN (?, ?) AND run_id IN (`+interrupted+`)`, RunFailed, reason, at, RunRunning, RunWaiting); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE actions SET state = ?, reason = 'not started: run ended', ended_at = ? WHERE state = ? AND run_id IN (`+interrupted+`)`, RunCancelled, at, RunQueued); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, reason = ?, ended_at = ? WHERE id IN (`+interrupted+`)`, RunFailed, reason, at)
		if err != nil {
			return err
		}
		c, _ := res.RowsAffected()
		n = int(c)
		// Approvals of actions that ended can no longer be decided.
		_, err = tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = 'slipway', decided_at = ?, comment = ? WHERE state = ?
			AND action_id IN (SELECT id FROM actions WHERE state <> ?)`, ApprovalCancelled, at, reason, ApprovalPending, RunWaiting)
		return err
	})
	return n, err
}

// GetAction returns one action.
func (db *DB) GetAction(ctx context.Context, id int64) (Action, error) {
	a, err := scanAction(db.read.QueryRowContext(ctx, `SELECT `+actionCols+` FROM actions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("action %d: %w", id, ErrNotFound)
	}
	return a, err
}

func (db *DB) SetRunState(ctx context.Context, runID int64, state, reason string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, reason = ? WHERE id = ? AND ended_at IS NULL`, state, reason, runID)
		return err
	})
}

func (db *DB) RetryRun(ctx context.Context, runID int64, stageIndex int) error {
	return db.tx(ctx, func(tx *Tx) error {
		// An expired run has lost the artifacts its later stages read.
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, reason = '', ended_at = NULL WHERE id = ? AND state IN (?, ?) AND expired_at IS NULL`, RunQueued, runID, RunFailed, RunCancelled)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var expired sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT expired_at FROM runs WHERE id = ?`, runID).Scan(&expired); err == nil && expired.Valid {
				return Conflictf("run %d cannot be retried: its artifacts and logs expired on %s (run retention); start a new run", runID, fromDB(expired).Format(time.RFC3339))
			}
			return Conflictf("run %d has not failed or been cancelled; only those can be retried", runID)
		}
		// The actions run again, so their reports of the last attempt go.
		_, err = tx.ExecContext(ctx, `UPDATE actions SET state = ?, reason = '', exit_code = NULL, started_at = NULL, ended_at = NULL, summary = '', annotations = ''
			WHERE run_id = ? AND ((stage_index = ? AND state != ?) OR stage_index > ?)`, RunQueued, runID, stageIndex, RunSucceeded, stageIndex)
		return err
	})
}
