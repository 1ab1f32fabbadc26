package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	tok, _ := Caller(r.Context())
	writeJSON(w, http.StatusOK, tok)
}

// --- tokens ---

type createTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// App limits the token to one app's repositories and objects, Env
	// further to one of its environments.
	App string `json:"app"`
	Env string `json:"env"`
}

// CreatedToken is the only response that ever carries a token's secret.
type CreatedToken struct {
	store.Token
	Secret string `json:"token"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	created, err := s.issueTokenFor(r.Context(), req.Name, req.Role, req.App, req.Env)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

// issueToken validates and creates a token for every app; its secret is in
// the result only.
func (s *Server) issueToken(ctx context.Context, name, roleName string) (CreatedToken, error) {
	return s.issueTokenFor(ctx, name, roleName, "", "")
}

// issueTokenFor is issueToken limited to app ("": every app) and to its
// environment env ("": all of them).
func (s *Server) issueTokenFor(ctx context.Context, name, roleName, app, env string) (CreatedToken, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 {
		return CreatedToken{}, errBadRequest("name", "name is required and at most 64 characters")
	}
	if strings.HasPrefix(name, "system:") {
		return CreatedToken{}, errBadRequest("name", "token names starting with system: are the server's own; choose another name")
	}
	role, err := auth.ParseRole(roleName)
	if err != nil {
		return CreatedToken{}, errBadRequest("role", "%v", err)
	}
	if app != "" {
		if role == auth.Admin {
			return CreatedToken{}, errBadRequest("app", "an admin token manages every app and cannot be limited to one; give role deployer or viewer")
		}
		a, err := s.db.GetApp(ctx, app)
		if err != nil {
			return CreatedToken{}, errBadRequest("app", "app %q does not exist", app)
		}
		if env != "" && !slices.Contains(a.Environments, env) {
			return CreatedToken{}, errBadRequest("env", "app %s has no environment %q (it has %s)", app, env, strings.Join(a.Environments, ", "))
		}
	} else if env != "" {
		return CreatedToken{}, errBadRequest("env", "a token limited to an environment names its app too (--app)")
	}
	plain, hash := auth.NewToken()
	tok, err := s.db.CreateToken(ctx, store.Token{ID: auth.NewID("tok_"), Name: name, Role: role.String(), App: app, Env: env}, hash)
	return CreatedToken{Token: tok, Secret: plain}, err
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.db.ListTokens(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toks)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.db.RevokeToken(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

// --- apps ---

type createAppRequest struct {
	Name string `json:"name"`
}

// Environments every new app gets.
var defaultEnvironments = []string{"staging", "production"}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	var req createAppRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !source.ValidAppName(req.Name) {
		s.writeError(w, r, errBadRequest("name", "app name %q must match %s (lower-case letters, digits and dashes, at most 63 characters)", req.Name, source.AppNameRule))
		return
	}
	if _, err := s.db.GetApp(r.Context(), req.Name); err == nil {
		s.writeError(w, r, &apiError{Status: http.StatusConflict, Code: "already_exists", Field: "name", Message: "app " + req.Name + " already exists"})
		return
	}
	if err := s.source.CreateRepo(r.Context(), req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	app, err := s.db.CreateApp(r.Context(), store.App{Name: req.Name, RegistryRepo: req.Name, Environments: defaultEnvironments})
	if err != nil {
		_ = s.source.DeleteRepo(req.Name) // keep disk and database in step
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, app)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.db.ListApps(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apps)
}

func (s *Server) showApp(w http.ResponseWriter, r *http.Request) {
	app, err := s.db.GetApp(r.Context(), r.PathValue("app"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, app)
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if err := s.db.DeleteApp(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.source.DeleteRepo(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	repos, err := s.reg.DeleteRepositories(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(repos) > 0 {
		s.log.Info("deleted the app's registry repositories; their layers go at the next image gc", "app", name, "repositories", repos)
	}
	s.removeAppLeftovers(r.Context(), name)
	s.revokePullTokens(r.Context(), name, "")
	w.WriteHeader(http.StatusNoContent)
}

type setSourceRequest struct {
	URL           string  `json:"url"`
	WebhookSecret *string `json:"webhook_secret"`
}

func (s *Server) setAppSource(w http.ResponseWriter, r *http.Request) {
	var req setSourceRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The URL's credentials are sealed apart; answers show it without them.
	src, err := s.source.SealSource(req.URL)
	if err != nil {
		s.writeError(w, r, errBadRequest("url", "%v", err))
		return
	}
	var sealed []byte
	if req.WebhookSecret != nil {
		if len(*req.WebhookSecret) < 16 {
			s.writeError(w, r, errBadRequest("webhook_secret", "webhook secret must be at least 16 characters; generate one with: openssl rand -hex 32"))
			return
		}
		sealed = s.keys.Seal([]byte(*req.WebhookSecret))
	}
	app, err := s.db.SetAppSource(r.Context(), r.PathValue("app"), src, sealed, req.WebhookSecret == nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, app)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if _, err := s.db.GetApp(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	evs, err := s.db.ListPushEvents(r.Context(), name, page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Reasons recorded by older versions may quote a source URL with its
	// credentials (git's stderr); new ones are scrubbed when recorded.
	for i := range evs {
		evs[i].Reason = source.MaskURLUserinfo(evs[i].Reason)
	}
	writeJSON(w, http.StatusOK, evs)
}

// --- runs ---

func pageParams(r *http.Request) (store.Page, error) {
	var p store.Page
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return p, errBadRequest("limit", "limit must be a whole number from 1 to 500")
		}
		p.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return p, errBadRequest("before", "before must be a positive id (the last id of the previous page)")
		}
		p.Before = n
	}
	return p, nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	runs, err := s.db.ListRuns(r.Context(), r.URL.Query().Get("app"), page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runs)
}

func runIDParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errBadRequest("id", "run id %q must be a positive number", r.PathValue("id"))
	}
	return id, nil
}

// pathRun is the run the path's id names; when there is none it has
// answered the error and reports false.
func (s *Server) pathRun(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	id, err := runIDParam(r)
	if err == nil {
		var run store.Run
		if run, err = s.db.GetRun(r.Context(), id); err == nil {
			return run, true
		}
	}
	s.writeError(w, r, err)
	return store.Run{}, false
}

// RunDetail is a run with its actions and artifacts.
type RunDetail struct {
	store.Run
	Actions   []store.Action   `json:"actions"`
	Artifacts []store.Artifact `json:"artifacts"`
	Reports   []store.Report   `json:"reports"`
	Variables []store.Variable `json:"variables"`
	// Approvals is the audit log of the run's approval actions.
	Approvals []store.Approval `json:"approvals"`
}

func (s *Server) showRun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.runDetail(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// runDetail loads a run with everything its pages show.
func (s *Server) runDetail(ctx context.Context, id int64) (RunDetail, error) {
	run, err := s.db.GetRun(ctx, id)
	if err != nil {
		return RunDetail{}, err
	}
	d := RunDetail{Run: run}
	if d.Actions, err = s.db.ListActions(ctx, id); err != nil {
		return d, err
	}
	if d.Artifacts, err = s.db.ListArtifacts(ctx, id); err != nil {
		return d, err
	}
	if d.Reports, err = s.db.ListReports(ctx, id); err != nil {
		return d, err
	}
	if d.Variables, err = s.db.ListVariables(ctx, id); err != nil {
		return d, err
	}
	d.Approvals, err = s.db.ListApprovals(ctx, id)
	return d, err
}

type startRunRequest struct {
	Ref string `json:"ref"`
	// Workflow runs a GitHub Actions workflow by hand (its
	// on.workflow_dispatch), with Inputs.
	Workflow string            `json:"workflow"`
	Inputs   map[string]string `json:"inputs"`
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req startRunRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Ref == "" {
		req.Ref = "main"
	}
	ref, commit, err := s.source.ResolveRef(r.Context(), app, req.Ref)
	if err != nil {
		s.writeError(w, r, errBadRequest("ref", "%v", err))
		return
	}
	if req.Workflow != "" {
		s.dispatchWorkflow(w, r, app, ref, commit, req)
		return
	}
	if len(req.Inputs) > 0 {
		s.writeError(w, r, errBadRequest("inputs", "inputs are for a workflow run: name the workflow too"))
		return
	}
	data, err := s.source.ReadFile(r.Context(), app, commit, slipwayfile.FileName)
	if err != nil {
		s.writeError(w, r, errBadRequest("ref", "commit %s has no %s; to run a workflow of %s, name it with workflow", commit[:12], slipwayfile.FileName, workflow.Dir))
		return
	}
	if _, err := slipwayfile.Parse(data); err != nil {
		s.writeError(w, r, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_pipeline", Field: "slipway.yaml", Message: err.Error()})
		return
	}
	tok, _ := Caller(r.Context())
	run, err := s.db.CreateRun(r.Context(), store.Run{App: app, State: store.RunQueued, Trigger: "manual:" + tok.Name, Ref: ref, Commit: commit})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.engine.Wake()
	writeJSON(w, http.StatusCreated, run)
}

func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) {
	run, ok := s.pathRun(w, r)
	if !ok {
		return
	}
	id := run.ID
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		var err error
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			s.writeError(w, r, errBadRequest("after", "after must be the id of the last line already read"))
			return
		}
	}
	if r.URL.Query().Get("follow") == "true" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		if v := r.Header.Get("Last-Event-ID"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > after {
				after = n
			}
		}
		s.streamLogs(w, r, id, after)
		return
	}
	lines, err := s.db.ListLog(r.Context(), id, after, 5000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lines)
}

// logPollInterval bounds how late a follower learns that its run ended;
// stored lines wake it at once.
const logPollInterval = 50 * time.Millisecond

// streamLogs sends log lines as Server-Sent Events (id = line id, so a
// client resumes with Last-Event-ID) until the run ends, then an "end" event
// carrying the run's final state.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request, runID, after int64) {
	es := startEvents(w)
	for {
		appended := s.db.LogAppended() // before the read, so no line slips between
		lines, err := s.db.ListLog(r.Context(), runID, after, 1000)
		if err != nil {
			return
		}
		for _, l := range lines {
			es.event(strconv.FormatInt(l.ID, 10), "line", l)
			after = l.ID
		}
		if len(lines) > 0 {
			if es.flush() != nil {
				return
			}
			continue
		}
		run, err := s.db.GetRun(r.Context(), runID)
		if err != nil {
			return
		}
		if run.EndedAt != nil {
			// Lines are stored before the run ends, so nothing can follow this.
			if more, _ := s.db.ListLog(r.Context(), runID, after, 1); len(more) == 0 {
				es.event("", "end", map[string]string{"state": run.State, "reason": run.Reason})
				_ = es.flush()
				return
			}
			continue
		}
		if !es.idle(r.Context(), appended, logPollInterval) {
			return
		}
	}
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.pathRun(w, r)
	if !ok {
		return
	}
	id := run.ID
	if run.EndedAt != nil {
		s.writeError(w, r, &apiError{Status: http.StatusConflict, Code: "run_ended", Message: fmt.Sprintf("run %d already ended %s", id, run.State)})
		return
	}
	if err := s.engine.Cancel(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": fmt.Sprintf("run %d is being cancelled", id)})
}

type retryRequest struct {
	Stage string `json:"stage"`
}

func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req retryRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if _, err := s.db.GetRun(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.engine.Retry(r.Context(), id, req.Stage); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: "stage", Message: err.Error()}
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": fmt.Sprintf("run %d queued again", id)})
}

func (s *Server) listTransitions(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	ts, err := s.db.ListTransitions(r.Context(), app)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

type transitionRequest struct {
	Enabled *bool  `json:"enabled"`
	Reason  string `json:"reason"`
}

func (s *Server) setTransition(w http.ResponseWriter, r *http.Request) {
	app, stage := r.PathValue("app"), r.PathValue("stage")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req transitionRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Enabled == nil {
		s.writeError(w, r, errBadRequest("enabled", "enabled is required: true lets runs enter the stage, false holds them before it"))
		return
	}
	if *req.Enabled {
		if err := s.db.EnableTransition(r.Context(), app, stage); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"message": "transition to " + stage + " enabled"})
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		s.writeError(w, r, errBadRequest("reason", "a reason is required to disable a transition, so others know why runs wait"))
		return
	}
	tok, _ := Caller(r.Context())
	if err := s.db.DisableTransition(r.Context(), store.Transition{App: app, Stage: stage, Reason: req.Reason, DisabledBy: tok.Name}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "transition to " + stage + " disabled"})
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	id, err := runIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	run, err := s.db.GetRun(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if run.ExpiredAt != nil {
		s.writeError(w, r, errGone("run %d's artifacts and logs expired on %s: the server keeps them for a while after a run ends (slipway server --run-retention); start a new run to build them again",
			id, run.ExpiredAt.Format(time.RFC3339)))
		return
	}
	arts, err := s.db.ListArtifacts(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, a := range arts {
		if a.Name != r.PathValue("name") {
			continue
		}
		rc, err := s.engine.Artifacts.Open(r.Context(), a.SHA256)
		if errors.Is(err, fs.ErrNotExist) {
			s.writeError(w, r, errGone("artifact %s of run %d is no longer in the blob store", a.Name, id))
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
		w.Header().Set("Digest", "sha-256="+a.SHA256)
		_, _ = io.Copy(w, rc)
		return
	}
	s.writeError(w, r, errNotFound("run %d has no artifact %s", id, r.PathValue("name")))
}

// --- git and webhooks ---

func (s *Server) gitApp(w http.ResponseWriter, r *http.Request) (string, bool) {
	name, ok := strings.CutSuffix(r.PathValue("repo"), ".git")
	if !ok || !source.ValidAppName(name) {
		s.writeError(w, r, errNotFound("no repository %s; repositories are at /git/APP.git", r.PathValue("repo")))
		return "", false
	}
	if _, err := s.db.GetApp(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return "", false
	}
	return name, true
}

func (s *Server) gitInfoRefs(w http.ResponseWriter, r *http.Request) {
	app, ok := s.gitApp(w, r)
	if !ok {
		return
	}
	tok, _ := Caller(r.Context())
	switch r.URL.Query().Get("service") {
	case "git-upload-pack":
	case "git-receive-pack":
		if err := requireRole(tok, auth.Deployer); err != nil {
			s.writeError(w, r, err)
			return
		}
	default:
		s.writeError(w, r, errBadRequest("service", "only smart HTTP is served: service must be git-upload-pack or git-receive-pack"))
		return
	}
	s.source.ServeGit(w, r, app, tok.Name)
}

func (s *Server) gitUploadPack(w http.ResponseWriter, r *http.Request) {
	if app, ok := s.gitApp(w, r); ok {
		tok, _ := Caller(r.Context())
		s.source.ServeGit(w, r, app, tok.Name)
	}
}

func (s *Server) gitReceivePack(w http.ResponseWriter, r *http.Request) {
	if app, ok := s.gitApp(w, r); ok {
		tok, _ := Caller(r.Context())
		// The pusher's terminal links runs as notices do, at the public URL.
		runURL := func(id int64) string { return s.notify.Link(fmt.Sprintf("/runs/%d", id)) }
		s.source.ServePush(w, r, app, tok.Name, runURL)
	}
}

func (s *Server) githubWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			s.writeError(w, r, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "webhook payload is over the " + humanBytes(maxErr.Limit) + " limit"})
			return
		}
		s.writeError(w, r, errBadRequest("", "read payload: %v", err))
		return
	}
	res, err := s.source.HandleGitHub(r.Context(), source.Delivery{
		App:       r.PathValue("app"),
		Event:     r.Header.Get("X-GitHub-Event"),
		ID:        r.Header.Get("X-GitHub-Delivery"),
		Signature: r.Header.Get("X-Hub-Signature-256"),
		Body:      body,
	})
	if err != nil {
		var he *source.HTTPError
		if errors.As(err, &he) {
			err = &apiError{Status: he.Status, Code: he.Code, Field: he.Field, Message: he.Message}
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, res.Status, res)
}
