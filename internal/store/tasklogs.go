package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// TaskLogLine is one line a task's container wrote, kept as CloudWatch
// Logs keeps it: in a log group, in the stream of one container of one task.
type TaskLogLine struct {
	ID        int64     `json:"id"`
	App       string    `json:"app"`
	Env       string    `json:"environment"`
	Service   string    `json:"service"`
	Task      string    `json:"task"`
	Container string    `json:"container"`
	Group     string    `json:"log_group"`
	Stream    string    `json:"log_stream"`
	Source    string    `json:"source"` // stdout or stderr
	At        time.Time `json:"at"`
	Line      string    `json:"line"`
}

// TaskLogQuery selects a service's lines, oldest first.
type TaskLogQuery struct {
	App, Env, Service string
	Task              string    // only this task's lines ("" for all)
	Since             time.Time // only lines written at or after it (zero for all)
	AfterID           int64     // only lines stored after this one: the next page, or a follower's next look
	Limit             int       // at most this many (default and most 5000)
}

// TaskLogStore keeps task containers' output.
type TaskLogStore interface {
	AppendTaskLogs(ctx context.Context, lines []TaskLogLine) error
	ListTaskLogs(ctx context.Context, q TaskLogQuery) ([]TaskLogLine, error)
	LastTaskLogAt(ctx context.Context, taskID, container string) (time.Time, error)
	DeleteTaskLogsBefore(ctx context.Context, before time.Time) (int64, error)
}

var _ TaskLogStore = (*DB)(nil)

// Log lines are dated in Unix nanoseconds, as the engine dates them: a
// collector that resumes asks for what follows the last line it stored,
// and microseconds would lose lines written within one.
func nanosToDB(t time.Time) int64 { return t.UnixNano() }

func nanosFromDB(v int64) time.Time { return time.Unix(0, v).UTC() }

// storableText is s as both engines store it: PostgreSQL's text holds
// neither NUL nor bytes that are not UTF-8, and refuses the statement that
// brings them. Each is kept as U+FFFD instead, as encoding/json would show
// it, so that text from outside (a container's output, a remote server's
// error) reads the same on either engine and never costs the lines or the
// update that came with it.
func storableText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// AppendTaskLogs stores lines in one transaction.
func (db *DB) AppendTaskLogs(ctx context.Context, lines []TaskLogLine) error {
	if len(lines) == 0 {
		return nil
	}
	rows := make([][]any, len(lines))
	for i, l := range lines {
		rows[i] = []any{l.App, l.Env, l.Service, l.Task, l.Container, l.Group, l.Stream, l.Source, nanosToDB(l.At), storableText(l.Line)}
	}
	return db.tx(ctx, func(tx *Tx) error {
		if err := insertRows(ctx, tx, "task_log_lines", []string{"app", "env", "service", "task_id", "container", "log_group", "log_stream", "source", "at", "line"}, rows); err != nil {
			return fmt.Errorf("store log lines of task %s: %w", lines[0].Task, err)
		}
		return nil
	})
}

// ListTaskLogs returns a service's lines in the order they were stored.
func (db *DB) ListTaskLogs(ctx context.Context, q TaskLogQuery) ([]TaskLogLine, error) {
	if q.Limit <= 0 || q.Limit > 5000 {
		q.Limit = 5000
	}
	since := int64(0)
	if !q.Since.IsZero() {
		since = nanosToDB(q.Since)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, app, env, service, task_id, container, log_group, log_stream, source, at, line FROM task_log_lines
		WHERE app = ? AND env = ? AND service = ? AND id > ? AND at >= ? AND (? = '' OR task_id = ?)
		ORDER BY id LIMIT ?`, q.App, q.Env, q.Service, q.AfterID, since, q.Task, q.Task, q.Limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row scanner) (TaskLogLine, error) {
		var l TaskLogLine
		var at int64
		err := row.Scan(&l.ID, &l.App, &l.Env, &l.Service, &l.Task, &l.Container, &l.Group, &l.Stream, &l.Source, &at, &l.Line)
		l.At = nanosFromDB(at)
		return l, err
	})
}

// LastTaskLogAt is when the newest stored line of a task's container was
// written; zero when none is stored.
func (db *DB) LastTaskLogAt(ctx context.Context, taskID, container string) (time.Time, error) {
	var at sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT MAX(at) FROM task_log_lines WHERE task_id = ? AND container = ?`, taskID, container).Scan(&at)
	if err != nil || !at.Valid {
		return time.Time{}, err
	}
	return nanosFromDB(at.Int64), nil
}

// taskLogDeleteBatch bounds one retention transaction, so the sweep of a
// large backlog never holds the single writer for long.
const taskLogDeleteBatch = 5000

// DeleteTaskLogsBefore deletes the lines written before a time, a batch
// per transaction, and reports how many went.
func (db *DB) DeleteTaskLogsBefore(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.tx(ctx, func(tx *Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM task_log_lines WHERE id IN (SELECT id FROM task_log_lines WHERE at < ? LIMIT ?)`,
				nanosToDB(before), taskLogDeleteBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < taskLogDeleteBatch {
			return total, err
		}
	}
}
