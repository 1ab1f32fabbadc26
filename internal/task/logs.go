package task

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/taskdef"
)

// MaxLogLine is the most of one line of output the collector keeps; the
// rest of a longer line is dropped.
const MaxLogLine = 16 << 10

// LogNames names where the output of container c of a task is kept, as
// the awslogs driver names it in CloudWatch Logs: the group is the
// container's logConfiguration option awslogs-group, else
// /slipway/APP/ENV/SERVICE; the stream is PREFIX/CONTAINER/TASK with
// awslogs-stream-prefix, else CONTAINER/TASK.
func LogNames(app, env, service, taskID string, c taskdef.Container) (group, stream string) {
	group, prefix := awslogsOption(c, "awslogs-group"), awslogsOption(c, "awslogs-stream-prefix")
	if group == "" {
		group = "/slipway/" + app + "/" + env + "/" + service
	}
	stream = c.Name + "/" + taskID
	if prefix != "" {
		stream = prefix + "/" + stream
	}
	return group, stream
}

// awslogsOption reads logConfiguration.options[key] of c ("" if unset):
// the task definition keeps logConfiguration among its ECS fields as given.
func awslogsOption(c taskdef.Container, key string) string {
	lc, _ := c.Extra["logConfiguration"].(map[string]any)
	opts, _ := lc["options"].(map[string]any)
	v, _ := opts[key].(string)
	return strings.TrimSpace(v)
}

// usedLogOptions are the logConfiguration options that name where output is kept.
var usedLogOptions = map[string]bool{"awslogs-group": true, "awslogs-stream-prefix": true}

// IgnoredLogConfiguration refines the ignored paths taskdef.Parse reports:
// of each container's logConfiguration Slipway uses the awslogs group and
// stream prefix, so only its other parts (another driver, the region,
// secretOptions…) are reported, each by its own path, sorted.
func IgnoredLogConfiguration(td *taskdef.TaskDef, ignored []string) []string {
	out := make([]string, 0, len(ignored))
	for _, path := range ignored {
		index, ok := strings.CutPrefix(path, "containerDefinitions[")
		if ok {
			index, ok = strings.CutSuffix(index, "].logConfiguration")
		}
		i, err := strconv.Atoi(index)
		if !ok || err != nil || i < 0 || i >= len(td.ContainerDefinitions) {
			out = append(out, path)
			continue
		}
		lc, ok := td.ContainerDefinitions[i].Extra["logConfiguration"].(map[string]any)
		if !ok {
			out = append(out, path)
			continue
		}
		for k, v := range lc {
			switch {
			case k == "logDriver" && v == "awslogs":
			case k == "options":
				opts, ok := v.(map[string]any)
				if !ok {
					out = append(out, path+".options")
					continue
				}
				for o := range opts {
					if !usedLogOptions[o] {
						out = append(out, path+".options."+o)
					}
				}
			default:
				out = append(out, path+"."+k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// LogLine is one line a task's container wrote.
type LogLine struct {
	App, Env, Service, Task, Container string
	Group, Stream                      string
	Source                             string // stdout or stderr
	At                                 time.Time
	Text                               string
}

// LogSink keeps collected lines.
type LogSink interface {
	AppendLogs(ctx context.Context, lines []LogLine) error
	// LastLogAt is when the newest kept line of a task's container was
	// written (zero: none), so a collector that restarts resumes after it.
	LastLogAt(ctx context.Context, taskID, container string) (time.Time, error)
}

// Collector follows the output of task containers and hands it, line by
// line, to its sink, so the output outlives the containers. One follower
// per container streams the engine's log (never reading it whole); one
// writer hands the lines over in batches.
type Collector struct {
	Sink LogSink
	// Mask returns the masker of a task's secrets (nil: nothing to mask):
	// lines are masked before they are kept.
	Mask func(ctx context.Context, t Task) *strings.Replacer
	Log  *slog.Logger

	mu        sync.Mutex
	followers map[string]*follower // by container ID
	done      map[string]bool      // containers followed to their end
	last      map[string]time.Time // by container ID: the newest line handed on
	bell      chan struct{}        // closed, and replaced, when lines are kept
	queue     chan LogLine
	flushes   chan chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	following sync.WaitGroup
	quit      chan struct{} // closed once the followers ended
	written   chan struct{} // closed when the writer ended
}

type follower struct {
	task  string
	ended chan struct{}
}

// Log queue and batch sizes: with MaxLogLine they bound what the
// collector holds at once.
const (
	logQueue = 512
	logBatch = 500
)

// Start starts the writer; followers start with Sync and Follow.
func (c *Collector) Start(ctx context.Context) {
	c.followers, c.done, c.last = map[string]*follower{}, map[string]bool{}, map[string]time.Time{}
	c.bell = make(chan struct{})
	c.queue, c.flushes = make(chan LogLine, logQueue), make(chan chan struct{})
	c.quit, c.written = make(chan struct{}), make(chan struct{})
	c.ctx, c.cancel = context.WithCancel(ctx)
	go c.write()
}

// Close stops following, keeps what was read and returns.
func (c *Collector) Close() {
	if c == nil || c.cancel == nil {
		return
	}
	c.mu.Lock()
	c.cancel() // under mu: no Follow adds a follower after it
	c.mu.Unlock()
	c.following.Wait()
	close(c.quit)
	<-c.written
}

// Sync follows every container of tasks that has output and no follower
// yet, and forgets containers no longer listed: tasks is a whole listing.
// backendOf says which backend lists each task.
func (c *Collector) Sync(backendOf func(Task) Backend, tasks []Task) {
	if c == nil || c.cancel == nil {
		return
	}
	listed := map[string]bool{}
	for _, t := range tasks {
		for _, cs := range t.Containers {
			listed[cs.ID] = true
		}
		if rt := backendOf(t); rt != nil {
			c.Follow(rt, t)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.done {
		if !listed[id] {
			delete(c.done, id)
		}
	}
	for id := range c.last {
		if !listed[id] && c.followers[id] == nil {
			delete(c.last, id)
		}
	}
}

// Follow follows task t's containers that have output and no follower yet.
func (c *Collector) Follow(rt Backend, t Task) {
	if c == nil || c.cancel == nil || c.ctx.Err() != nil {
		return
	}
	var mask *strings.Replacer
	masked := false
	for _, cs := range t.Containers {
		if cs.State == "created" || c.followed(cs.ID) {
			continue // no output before it starts; or followed already
		}
		if !masked && c.Mask != nil {
			mask, masked = c.Mask(c.ctx, t), true // once a task, outside the lock: it may ask a vault
		}
		c.mu.Lock()
		if c.followers[cs.ID] != nil || c.done[cs.ID] || c.ctx.Err() != nil { // another Follow came first, or Close
			c.mu.Unlock()
			continue
		}
		f := &follower{task: t.ID, ended: make(chan struct{})}
		c.followers[cs.ID] = f
		c.following.Add(1)
		c.mu.Unlock()
		go c.follow(rt, t, cs, mask, f)
	}
}

// followed reports a container that has a follower, or was followed to its end.
func (c *Collector) followed(cid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.followers[cid] != nil || c.done[cid]
}

// follow streams one container's output from the line after the last one
// kept until the container stops or the collector closes.
func (c *Collector) follow(rt Backend, t Task, cs ContainerState, mask *strings.Replacer, f *follower) {
	defer c.following.Done()
	ended := false
	defer func() {
		c.mu.Lock()
		delete(c.followers, cs.ID)
		if ended {
			c.done[cs.ID] = true
		}
		c.mu.Unlock()
		close(f.ended)
	}()
	c.mu.Lock()
	since := c.last[cs.ID]
	c.mu.Unlock()
	if since.IsZero() { // first seen since this collector started: resume after what the sink has
		var err error
		if since, err = c.Sink.LastLogAt(c.ctx, t.ID, cs.Name); err != nil {
			c.logf("read where the output of task %s/%s was left: %v", t.ID, cs.Name, err)
			return // the next Sync tries again rather than keep lines twice
		}
	}
	read, err := c.read(rt, t, cs, mask, true, since, lineCounts{})
	if c.ctx.Err() != nil {
		return
	}
	if ended = !rt.Running(c.ctx, t, cs); ended {
		// A last look: the engine may end the follow before it wrote a
		// container's last words. The same lines again, from the same
		// point, less those handed on: the engine times each stream
		// apart, so a later point could pass over the other's last lines.
		_, err = c.read(rt, t, cs, mask, false, since, read)
	}
	if err != nil && c.ctx.Err() == nil && !ended {
		c.logf("follow the output of task %s/%s: %v", t.ID, cs.Name, err)
	}
}

// lineCounts counts lines of each stream.
type lineCounts struct{ stdout, stderr int }

// read reads a container's output written after since (zero: all of it),
// until its end (follow: until the container stops), and hands it on line
// by line, less the first of each stream that skip counts. It counts the
// lines it read.
func (c *Collector) read(rt Backend, t Task, cs ContainerState, mask *strings.Replacer, follow bool, since time.Time, skip lineCounts) (lineCounts, error) {
	var n lineCounts
	line := LogLine{App: t.App, Env: t.Env, Service: t.Service, Task: t.ID, Container: cs.Name, Group: cs.LogGroup, Stream: cs.LogStream}
	emit := func(source string, count *int, skip int) func([]byte) {
		return func(b []byte) {
			*count++
			if *count <= skip {
				return // handed on by the read before
			}
			l := line
			l.Source = source
			l.At, l.Text = parseLogLine(string(b))
			if mask != nil {
				l.Text = mask.Replace(l.Text)
			}
			select {
			case c.queue <- l:
				c.mu.Lock()
				if l.At.After(c.last[cs.ID]) {
					c.last[cs.ID] = l.At
				}
				c.mu.Unlock()
			case <-c.ctx.Done():
			}
		}
	}
	// The engine prefixes each line with its time: room for it beyond MaxLogLine.
	stdout := &lineWriter{max: MaxLogLine + 64, emit: emit("stdout", &n.stdout, skip.stdout)}
	stderr := &lineWriter{max: MaxLogLine + 64, emit: emit("stderr", &n.stderr, skip.stderr)}
	err := rt.Logs(c.ctx, t, cs, since, follow, stdout, stderr)
	stdout.Close()
	stderr.Close()
	return n, err
}

// parseLogLine splits the engine's "TIME TEXT" and cuts TEXT to MaxLogLine.
func parseLogLine(s string) (time.Time, string) {
	at := time.Now().UTC()
	if ts, text, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			at, s = t.UTC(), text
		}
	}
	s = strings.TrimRight(s, "\r")
	if len(s) > MaxLogLine {
		s = capLine(s, MaxLogLine)
	}
	return at, s
}

// write hands queued lines to the sink in batches: what arrived while the
// last batch was written goes in the next, so a busy container costs few
// transactions and a quiet one's line is kept at once.
func (c *Collector) write() {
	defer close(c.written)
	batch := make([]LogLine, 0, logBatch)
	// keep writes what is queued, a batch at a time, until the queue is
	// empty or after batches of them: a flush need not wait for lines
	// queued after it.
	keep := func(batches int) {
		for ; batches > 0; batches-- {
			for len(batch) < logBatch {
				select {
				case l := <-c.queue:
					batch = append(batch, l)
					continue
				default:
				}
				break
			}
			if len(batch) == 0 {
				return
			}
			if err := c.Sink.AppendLogs(context.WithoutCancel(c.ctx), batch); err != nil {
				c.logf("keep %d lines of task output: %v", len(batch), err)
			}
			batch = batch[:0]
			c.mu.Lock()
			close(c.bell)
			c.bell = make(chan struct{})
			c.mu.Unlock()
		}
	}
	for {
		select {
		case l := <-c.queue:
			batch = append(batch, l)
			keep(1)
		case ack := <-c.flushes:
			keep(logQueue/logBatch + 1)
			close(ack)
		case <-c.quit:
			keep(1 << 30)
			return
		}
	}
}

// Flush returns once the lines read so far are kept.
func (c *Collector) Flush(ctx context.Context) error {
	if c == nil || c.cancel == nil {
		return nil
	}
	ack := make(chan struct{})
	select {
	case c.flushes <- ack:
	case <-c.written:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Appended returns a channel closed the next time lines are kept: a
// reader takes it before it reads, then waits on it.
func (c *Collector) Appended() <-chan struct{} {
	if c == nil || c.cancel == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bell
}

// Wait waits, at most timeout, until the followers of task taskID have
// read its containers' output to the end: a task stops, then Wait, then
// its containers go.
func (c *Collector) Wait(taskID string, timeout time.Duration) {
	if c == nil || c.cancel == nil {
		return
	}
	var ended []chan struct{}
	c.mu.Lock()
	for _, f := range c.followers {
		if f.task == taskID {
			ended = append(ended, f.ended)
		}
	}
	c.mu.Unlock()
	deadline := time.After(timeout)
	for _, e := range ended {
		select {
		case <-e:
		case <-deadline:
			return
		}
	}
}

func (c *Collector) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log.Warn(fmt.Sprintf(format, args...))
	}
}
