package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"html/template"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/web"
	"github.com/slipway-dev/slipway/internal/workflow"
)

// The run console: each action's log on a page of its own (as a GitHub
// Actions job's), the last lines of a failed action on its card, and the
// buttons that cancel, retry and re-run a run.

const (
	// logPage is how many lines one read of a run's log takes.
	logPage = 5000
	// tailLines is how many of a failed action's last lines its card shows.
	tailLines = 10
	// pageLines is how many of a log's last lines an action's page opens
	// with, and earlierLines how many more each "Show earlier lines"
	// loads: a page over a long log stays quick to render, and the raw log
	// has it all.
	pageLines    = 1000
	earlierLines = 5000
)

// eachActionLine calls fn with every line of one action of a run stored
// after line after, in order, and returns the id of the last line read
// (after, when there was none).
func (s *Server) eachActionLine(ctx context.Context, actionID, after int64, fn func(store.LogLine)) (int64, error) {
	for {
		lines, err := s.db.ListActionLog(ctx, actionID, after, logPage)
		if err != nil {
			return after, err
		}
		for _, l := range lines {
			fn(l)
			after = l.ID
		}
		if len(lines) < logPage {
			return after, nil
		}
	}
}

// logTails keeps the last lines of a run's failed actions, and how many
// each wrote. A failed action has ended, so its tail is read once.
type logTails struct {
	last   map[int64][]store.LogLine
	counts map[int64]int
}

func newLogTails() *logTails {
	return &logTails{last: map[int64][]store.LogLine{}, counts: map[int64]int{}}
}

func (t *logTails) update(ctx context.Context, db *store.DB, actions []store.Action) error {
	for _, a := range actions {
		if a.State != store.RunFailed {
			continue
		}
		if _, ok := t.counts[a.ID]; ok {
			continue
		}
		tail, n, err := db.ActionLogTail(ctx, a.ID, tailLines)
		if err != nil {
			return err
		}
		t.last[a.ID], t.counts[a.ID] = tail, n
	}
	return nil
}

// tailHTML renders an action's last lines, numbered as on its page and
// linking there.
func (t *logTails) tailHTML(a store.Action) template.HTML {
	tail := t.last[a.ID]
	if len(tail) == 0 {
		return ""
	}
	rend := web.NewLogRendererAt(t.counts[a.ID] - len(tail))
	page := actionPath(a)
	var b strings.Builder
	for _, l := range tail {
		if rl := rend.Line(l.ID, l.Line, l.At); rl.Kind != "endgroup" {
			b.WriteString(string(web.LineElement(rl, page, false)))
		}
	}
	return template.HTML(b.String())
}

func actionPath(a store.Action) string {
	return fmt.Sprintf("/runs/%d/actions/%d", a.RunID, a.ID)
}

// runControls are the buttons that act on a whole run, as its state allows
// and the signed-in role may use.
type runControls struct {
	Run       store.Run
	CSRF      string
	CanDeploy bool
	// Next is the page the forms return to.
	Next                 string
	Cancel, Retry, Rerun bool
}

func (s *Server) runControls(r *http.Request, run store.Run, next string) runControls {
	p := s.page(r, "", "", nil)
	return runControls{Run: run, CSRF: p.CSRF, CanDeploy: p.CanDeploy, Next: next,
		Cancel: run.EndedAt == nil,
		Retry:  run.EndedAt != nil && (run.State == store.RunFailed || run.State == store.RunCancelled) && run.ExpiredAt == nil,
		Rerun:  run.EndedAt != nil,
	}
}

// Key changes when the buttons shown do, so a live page replaces them
// only then.
func (c runControls) Key() string {
	return fmt.Sprintf("%t-%t-%t-%t", c.CanDeploy, c.Cancel, c.Retry, c.Rerun)
}

// actionNavStage is a stage and its actions in an action page's list.
type actionNavStage struct {
	Name    string
	Actions []store.Action
}

// actionPage is one action and its log.
type actionPage struct {
	Run      store.Run
	Action   store.Action
	Nav      []actionNavStage
	Controls runControls
	Lines    template.HTML
	// Count is how many lines the log has, Shown how many the page holds
	// (its last), First the id of the first of those.
	Count, Shown int
	First        int64
	// After is the id of the run's last log line the page holds: the
	// live stream sends those after it.
	After int64
	// Live is set while the action may still write.
	Live bool
}

func (p actionPage) Path() string { return actionPath(p.Action) }

// Raw is the link to the action's raw log.
func (p actionPage) Raw() string { return p.Path() + "/raw" }

func navStages(actions []store.Action) []actionNavStage {
	var out []actionNavStage
	for _, a := range actions {
		if len(out) == 0 || out[len(out)-1].Name != a.Stage {
			out = append(out, actionNavStage{Name: a.Stage})
		}
		out[len(out)-1].Actions = append(out[len(out)-1].Actions, a)
	}
	return out
}

// pathAction is the run and action the path's {id} and {aid} name.
func (s *Server) pathAction(r *http.Request) (store.Run, store.Action, error) {
	id, err := runIDParam(r)
	if err != nil {
		return store.Run{}, store.Action{}, err
	}
	aid, err := strconv.ParseInt(r.PathValue("aid"), 10, 64)
	if err != nil || aid < 1 {
		return store.Run{}, store.Action{}, errBadRequest("aid", "action id %q must be a positive number", r.PathValue("aid"))
	}
	a, err := s.db.GetAction(r.Context(), aid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.RunID != id) {
		return store.Run{}, store.Action{}, errNotFound("run %d has no action %d", id, aid)
	}
	if err != nil {
		return store.Run{}, store.Action{}, err
	}
	run, err := s.db.GetRun(r.Context(), id)
	return run, a, err
}

func (s *Server) uiAction(w http.ResponseWriter, r *http.Request) {
	run, a, err := s.pathAction(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	actions, err := s.db.ListActions(r.Context(), run.ID)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	p := actionPage{Run: run, Action: a, Nav: navStages(actions), Live: run.EndedAt == nil && a.EndedAt == nil}
	p.Controls = s.runControls(r, run, p.Path())
	tail, total, err := s.db.ActionLogTail(r.Context(), a.ID, pageLines)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	lines := renderLog(tail, total-len(tail))
	p.Count, p.Shown, p.Lines = total, len(lines), web.LogHTML(lines)
	if len(tail) > 0 {
		p.First = tail[0].ID
	}
	if len(tail) > 0 {
		p.After = tail[len(tail)-1].ID
	}
	s.ui.Page(w, http.StatusOK, "action", s.page(r, fmt.Sprintf("%s/%s · Run #%d", a.Stage, a.Name, run.ID), "runs", p))
}

// renderLog renders stored lines of one action as its page shows them,
// numbered from skipped+1. Colours set before the first line are not
// known: they start from the default, as a terminal joining late would.
func renderLog(stored []store.LogLine, skipped int) []web.LogLine {
	rend := web.NewLogRendererAt(skipped)
	lines := make([]web.LogLine, 0, len(stored))
	for _, l := range stored {
		lines = append(lines, rend.Line(l.ID, l.Line, l.At))
	}
	return lines
}

// earlierLog is what "Show earlier lines" adds to the top of an action's
// page.
type earlierLog struct {
	HTML template.HTML `json:"html"`
	// Before is the first line the answer holds (the next request's
	// before), and Omitted how many lines still precede it.
	Before  int64 `json:"before"`
	Omitted int   `json:"omitted"`
}

// uiActionLines answers "Show earlier lines" on an action's page: the
// earlierLines lines before line ?before=, rendered and numbered as the
// page's are.
func (s *Server) uiActionLines(w http.ResponseWriter, r *http.Request) {
	_, a, err := s.pathAction(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	before, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	if err != nil || before <= 0 {
		s.writeError(w, r, errBadRequest("before", "before must be the id of a line of the action's log (a positive integer), as the page's link gives it"))
		return
	}
	stored, preceding, err := s.db.ActionLogBefore(r.Context(), a.ID, before, earlierLines)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := earlierLog{HTML: web.LogHTML(renderLog(stored, preceding)), Before: before, Omitted: preceding}
	if len(stored) > 0 {
		out.Before = stored[0].ID
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// unsafeFileChars are those a download's file name does without.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// uiActionRaw sends an action's log as it was written, escapes and all.
func (s *Server) uiActionRaw(w http.ResponseWriter, r *http.Request) {
	run, a, err := s.pathAction(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if run.ExpiredAt != nil {
		s.uiError(w, r, http.StatusGone, "Logs expired", fmt.Sprintf("Run %d's logs expired on %s (run retention).", run.ID, run.ExpiredAt.UTC().Format(time.RFC3339)))
		return
	}
	name := unsafeFileChars.ReplaceAllString(fmt.Sprintf("run-%d-%s-%s.log", run.ID, a.Stage, a.Name), "_")
	web.SecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `inline; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	if _, err := s.eachActionLine(r.Context(), a.ID, 0, func(l store.LogLine) {
		_, _ = bw.WriteString(l.Line)
		_ = bw.WriteByte('\n')
	}); err != nil {
		s.log.Warn("raw log cut short", "request_id", requestID(r.Context()), "run", run.ID, "action", a.ID, "err", err)
	}
	_ = bw.Flush()
}

// uiArtifact downloads one of a run's artifacts (a tar archive) from its
// page. The API's download does the work (the run, its retention, the
// blob); this names the file to save, and shows what the API refuses (a
// run whose artifacts expired: 410) as a page.
func (s *Server) uiArtifact(w http.ResponseWriter, r *http.Request) {
	name := unsafeFileChars.ReplaceAllString(fmt.Sprintf("run-%s-%s.tar", r.PathValue("id"), r.PathValue("name")), "_")
	dw := &downloadWriter{ResponseWriter: w, file: name}
	s.getArtifact(dw, r)
	if dw.status == 0 {
		return
	}
	var body struct {
		Error apiError `json:"error"`
	}
	msg := "See the server log for request " + requestID(r.Context()) + "."
	if json.Unmarshal(dw.body.Bytes(), &body) == nil && body.Error.Message != "" {
		msg = body.Error.Message
	}
	title := http.StatusText(dw.status)
	if dw.status == http.StatusGone {
		title = "Artifact expired"
	}
	s.uiError(w, r, dw.status, title, sentence(msg))
}

// sentence makes an API message ("run 5 has no artifact x") a sentence.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// downloadWriter passes a download through, saved as file; an error
// answered instead (status 400 or more) is kept back, its body in body,
// for the caller to show as a page.
type downloadWriter struct {
	http.ResponseWriter
	file    string
	started bool
	status  int
	body    bytes.Buffer
}

func (d *downloadWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

func (d *downloadWriter) WriteHeader(code int) {
	switch {
	case d.started || d.status != 0:
	case code >= 400:
		d.status = code
	default:
		d.start()
		d.ResponseWriter.WriteHeader(code)
	}
}

func (d *downloadWriter) Write(p []byte) (int, error) {
	if d.status != 0 {
		if d.body.Len() < 64<<10 {
			d.body.Write(p)
		}
		return len(p), nil
	}
	if !d.started {
		d.start()
	}
	return d.ResponseWriter.Write(p)
}

func (d *downloadWriter) start() {
	d.started = true
	h := d.Header()
	web.SecurityHeaders(h)
	h.Set("Content-Disposition", `attachment; filename="`+d.file+`"`)
	h.Set("Cache-Control", "private, no-store")
}

// logEvent is one rendered line sent to a live page.
type logEvent struct {
	ActionID int64         `json:"action_id"`
	N        int           `json:"n"`
	Kind     string        `json:"kind,omitempty"`
	Class    string        `json:"class,omitempty"`
	HTML     template.HTML `json:"html"`
}

// actionUpdate is what an action page redraws besides its log.
type actionUpdate struct {
	Head        string `json:"head"`
	Nav         string `json:"nav"`
	Controls    string `json:"controls"`
	ControlsKey string `json:"controlsKey"`
}

// lastEventID is the larger of a query's after and the Last-Event-ID a
// reconnecting EventSource sends.
func lastEventID(r *http.Request) int64 {
	var after int64
	if n, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64); err == nil && n > 0 {
		after = n
	}
	if n, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && n > after {
		after = n
	}
	return after
}

// uiActionEvents follows an action's log for its page: each line after the
// page's last rendered as the page's are and numbered on from it, and the
// action's state, until it ends.
func (s *Server) uiActionEvents(w http.ResponseWriter, r *http.Request) {
	run, a, err := s.pathAction(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	after := lastEventID(r)
	// Lines are numbered from where the page's end: the count of those up
	// to it, not a read of the log from its start.
	_, upTo, err := s.db.ActionLogBefore(ctx, a.ID, after+1, 0)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	es := startEvents(w)
	rend := web.NewLogRendererAt(upTo)
	sent := 0
	send := func(l store.LogLine) {
		rl := rend.Line(l.ID, l.Line, l.At)
		ev := logEvent{ActionID: l.ActionID, N: rl.N, Kind: rl.Kind, Class: rl.Class}
		if rl.Kind != "endgroup" {
			ev.HTML = web.LineElement(rl, "", true)
		}
		es.event(strconv.FormatInt(l.ID, 10), "line", ev)
		sent++
	}
	readTo, err := s.eachActionLine(ctx, a.ID, after, send)
	if err != nil {
		return
	}
	var last actionUpdate
	for {
		appended := s.db.LogAppended() // before the read, so no line slips between
		sent = 0
		if readTo, err = s.eachActionLine(ctx, a.ID, readTo, send); err != nil {
			return
		}
		if sent > 0 {
			if es.flush() != nil {
				return
			}
			continue
		}
		if run, err = s.db.GetRun(ctx, run.ID); err != nil {
			return
		}
		actions, lerr := s.db.ListActions(ctx, run.ID)
		if lerr != nil {
			return
		}
		for _, x := range actions {
			if x.ID == a.ID {
				a = x
			}
		}
		p := actionPage{Run: run, Action: a, Nav: navStages(actions)}
		p.Controls = s.runControls(r, run, p.Path())
		u, uerr := s.actionUpdate(r, p)
		if uerr != nil {
			return
		}
		if u != last {
			last = u
			es.event("", "head", u)
			if es.flush() != nil {
				return
			}
		}
		if a.EndedAt != nil || run.EndedAt != nil {
			// Lines are stored before an action ends: none can follow.
			sent = 0
			if readTo, err = s.eachActionLine(ctx, a.ID, readTo, send); err != nil || sent > 0 {
				_ = es.flush()
				continue
			}
			es.event("", "end", map[string]string{"state": a.State})
			_ = es.flush()
			return
		}
		if !es.idle(ctx, appended, livePoll) {
			return
		}
	}
}

func (s *Server) actionUpdate(r *http.Request, p actionPage) (actionUpdate, error) {
	page := s.page(r, "", "", p)
	head, err := s.ui.Fragment("action", "action-head", page)
	if err != nil {
		return actionUpdate{}, err
	}
	nav, err := s.ui.Fragment("action", "action-nav", page)
	if err != nil {
		return actionUpdate{}, err
	}
	controls, err := s.ui.Fragment("action", "run-controls", p.Controls)
	return actionUpdate{Head: head, Nav: nav, Controls: controls, ControlsKey: p.Controls.Key()}, err
}

// uiRunLogs streams a run's whole log, every action's lines as they come,
// each rendered as on its action's page.
func (s *Server) uiRunLogs(w http.ResponseWriter, r *http.Request) {
	run, ok := s.pathRun(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	after := lastEventID(r)
	es := startEvents(w)
	rends := map[int64]*web.LogRenderer{}
	var readTo int64
	for {
		appended := s.db.LogAppended()
		lines, err := s.db.ListLog(ctx, run.ID, readTo, 1000)
		if err != nil {
			return
		}
		for _, l := range lines {
			rend := rends[l.ActionID]
			if rend == nil {
				rend = web.NewLogRenderer()
				rends[l.ActionID] = rend
			}
			rl := rend.Line(l.ID, l.Line, l.At)
			readTo = l.ID
			if l.ID > after && rl.Kind != "endgroup" {
				es.event(strconv.FormatInt(l.ID, 10), "line", logEvent{ActionID: l.ActionID, N: rl.N, Kind: rl.Kind, Class: rl.Class, HTML: rl.HTML})
			}
		}
		if len(lines) > 0 {
			if es.flush() != nil {
				return
			}
			continue
		}
		if run, err = s.db.GetRun(ctx, run.ID); err != nil {
			return
		}
		if run.EndedAt != nil {
			if more, _ := s.db.ListLog(ctx, run.ID, readTo, 1); len(more) == 0 {
				es.event("", "end", map[string]string{"state": run.State, "reason": run.Reason})
				_ = es.flush()
				return
			}
			continue
		}
		if !es.idle(ctx, appended, logPollInterval) {
			return
		}
	}
}

// runFormNext is where a run's form returns: the run's page, or the page
// of one of its actions the form was on.
func runFormNext(r *http.Request, id int64) string {
	path := fmt.Sprintf("/runs/%d", id)
	if rest, ok := strings.CutPrefix(r.PostFormValue("next"), path+"/actions/"); ok {
		if n, err := strconv.ParseInt(rest, 10, 64); err == nil && n > 0 && strconv.FormatInt(n, 10) == rest {
			return path + "/actions/" + rest
		}
	}
	return path
}

// uiCancelRun cancels a run that has not ended, as `slipway run cancel`.
func (s *Server) uiCancelRun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	next := runFormNext(r, id)
	run, err := s.db.GetRun(r.Context(), id)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if run.EndedAt != nil {
		s.back(w, r, next, "", fmt.Sprintf("Run #%d already ended: %s.", id, run.State))
		return
	}
	if err := s.engine.Cancel(r.Context(), id); err != nil {
		s.uiFormError(w, r, next, err)
		return
	}
	tok, _ := Caller(r.Context())
	s.log.Info("run cancelled from the web console", "run", id, "token", tok.Name)
	s.back(w, r, next, fmt.Sprintf("Run #%d is being cancelled.", id), "")
}

// uiRetryRun runs a failed or cancelled run again from its first stage
// that did not succeed, or from the stage named, as `slipway run retry`.
func (s *Server) uiRetryRun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	next := runFormNext(r, id)
	if _, err := s.db.GetRun(r.Context(), id); err != nil {
		s.uiFail(w, r, err)
		return
	}
	stage := r.PostFormValue("stage")
	if err := s.engine.Retry(r.Context(), id, stage); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			s.back(w, r, next, "", err.Error())
			return
		}
		s.uiFormError(w, r, next, err)
		return
	}
	tok, _ := Caller(r.Context())
	s.log.Info("run retried from the web console", "run", id, "stage", stage, "token", tok.Name)
	msg := fmt.Sprintf("Run #%d is queued again: the stage that failed and those after it run once more.", id)
	if stage != "" {
		msg = fmt.Sprintf("Run #%d is queued again from stage %s.", id, stage)
	}
	s.back(w, r, next, msg, "")
}

// uiRerun starts a new run of what an ended run ran: the same commit and
// ref, and for a workflow run the same workflow and inputs.
func (s *Server) uiRerun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	path := fmt.Sprintf("/runs/%d", id)
	ctx := r.Context()
	old, err := s.db.GetRun(ctx, id)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if old.EndedAt == nil {
		s.back(w, r, path, "", fmt.Sprintf("Run #%d has not ended; cancel it first, or wait for it.", id))
		return
	}
	if _, err := s.db.GetApp(ctx, old.App); err != nil {
		s.uiFormError(w, r, path, err)
		return
	}
	short := old.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	file := old.Workflow
	if file == "" {
		file = slipwayfile.FileName
	}
	data, err := s.source.ReadFile(ctx, old.App, old.Commit, file)
	if err != nil {
		s.back(w, r, path, "", fmt.Sprintf("Commit %s no longer has %s, so run #%d cannot be run again.", short, file, id))
		return
	}
	if old.Workflow == "" {
		_, err = slipwayfile.Parse(data)
	} else {
		_, err = workflow.Parse(old.Workflow, data)
	}
	if err != nil {
		s.back(w, r, path, "", fmt.Sprintf("%s at commit %s does not parse: %v", file, short, err))
		return
	}
	tok, _ := Caller(ctx)
	run, err := s.db.CreateRun(ctx, store.Run{App: old.App, State: store.RunQueued, Trigger: rerunTrigger(old.Trigger, tok.Name),
		Ref: old.Ref, Commit: old.Commit, Workflow: old.Workflow, Inputs: old.Inputs})
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	s.engine.Wake()
	s.log.Info("run re-run from the web console", "run", id, "new_run", run.ID, "token", tok.Name)
	what := ""
	if old.Workflow != "" {
		what = ", workflow " + old.Workflow
		if len(old.Inputs) > 0 {
			what += " with the same inputs"
		}
	}
	s.back(w, r, fmt.Sprintf("/runs/%d", run.ID), fmt.Sprintf("Run #%d re-runs run #%d: commit %s of %s%s.", run.ID, id, short, old.Ref, what), "")
}

// rerunTrigger keeps the kind of event a run was started by, so a
// workflow sees the same github.event_name (workflow_dispatch for a run
// started by hand, push otherwise), and names who ran it again.
func rerunTrigger(old, who string) string {
	for _, p := range []string{"manual:", "dispatch:"} {
		if strings.HasPrefix(old, p) {
			return p + who
		}
	}
	return "rerun:" + who
}

// Omitted is how many of the log's first lines the page leaves out.
func (p actionPage) Omitted() int { return p.Count - p.Shown }
