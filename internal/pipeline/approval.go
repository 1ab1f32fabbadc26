package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/store"
)

// approvalPoll is how often a waiting approval re-reads its record when no
// decision woke it: decisions made through this engine wake it at once, the
// poll only catches deadlines and changes made elsewhere.
const approvalPoll = time.Second

// runApproval holds the run in state waiting until a person approves or
// rejects it, or its deadline passes. It returns "" when approved.
func (e *Engine) runApproval(ctx context.Context, r store.Run, a Action, row store.Action, ar *activeRun) string {
	start := time.Now().UTC()
	resumed := row.State == store.RunWaiting
	if !resumed || row.StartedAt == nil {
		row.StartedAt = &start
	}
	row.State = store.RunWaiting
	if err := e.Store.UpdateAction(ctx, row); err != nil {
		return err.Error()
	}
	review := a.ReviewURL
	if review != "" {
		vars, err := e.Store.ListVariables(ctx, r.ID)
		if err == nil {
			review, err = resolveRefs(review, vars)
		}
		if err != nil {
			reason := "review-url: " + err.Error()
			e.endAction(row, store.RunFailed, reason, nil)
			return reason
		}
	} else {
		review = e.runURL(r.ID)
	}
	ap, created, err := e.Store.OpenApproval(ctx, store.Approval{RunID: r.ID, ActionID: row.ID, Stage: row.Stage, Action: a.Name,
		Message: a.Message, ReviewURL: review, Deadline: start.Add(a.Timeout.Duration)}, resumed)
	if err != nil {
		e.endAction(row, store.RunFailed, err.Error(), nil)
		return err.Error()
	}
	// Written as the web pages write times, for people to read.
	deadline := ap.Deadline.UTC().Format("2006-01-02 15:04:05 UTC")
	waitReason := fmt.Sprintf("waiting for approval at %s/%s until %s", row.Stage, a.Name, deadline)
	if err := e.Store.SetRunState(ctx, r.ID, store.RunWaiting, waitReason); err != nil {
		e.endAction(row, store.RunFailed, err.Error(), nil)
		return err.Error()
	}
	if created {
		logs := newLogWriter(e.Store, row.ID, e.Log, nil)
		fmt.Fprintf(logs, "[slipway] Waiting for approval (deadline %s). Approve with: slipway approve %d\n", deadline, r.ID)
		if a.Message != "" {
			fmt.Fprintf(logs, "[slipway] Message: %s\n", a.Message)
		}
		fmt.Fprintf(logs, "[slipway] Review: %s\n", review)
		logs.Close()
		e.Notifier.Notify(ctx, notify.Event{Kind: notify.ApprovalNeeded, App: r.App, Channels: a.Notify,
			Title: fmt.Sprintf("%s: run %d waits for approval at %s", r.App, r.ID, row.Stage),
			Text:  a.Message, URL: review,
			Fields: map[string]string{"run": strconv.FormatInt(r.ID, 10), "stage": row.Stage, "action": a.Name,
				"commit": shortSHA(r.Commit), "ref": r.Ref, "deadline": ap.Deadline.Format(time.RFC3339), "approve": fmt.Sprintf("slipway approve %d", r.ID)}})
	}
	state, reason := e.awaitDecision(ctx, ap, ar)
	if state == "" {
		return "control plane stopped" // left waiting: the next start resumes it
	}
	if state == store.RunSucceeded {
		_ = e.Store.SetRunState(ctx, r.ID, store.RunRunning, "")
	}
	e.endAction(row, state, reason, nil)
	return reason
}

func (e *Engine) awaitDecision(ctx context.Context, ap store.Approval, ar *activeRun) (string, string) {
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	for {
		decided := e.decisions() // taken before the read, so no decision slips between
		cur, err := e.Store.GetApproval(ctx, ap.ID)
		if err != nil && ctx.Err() == nil {
			return store.RunFailed, err.Error()
		}
		switch cur.State {
		case store.ApprovalApproved:
			return store.RunSucceeded, ""
		case store.ApprovalRejected:
			return store.RunFailed, fmt.Sprintf("rejected by %s: %s", cur.DecidedBy, cur.Comment)
		case store.ApprovalExpired, store.ApprovalCancelled:
			return store.RunFailed, "approval " + cur.State + ": " + cur.Comment
		}
		if err == nil && time.Now().After(cur.Deadline) {
			why := fmt.Sprintf("no decision within %s", cur.Deadline.Sub(cur.RequestedAt).Round(time.Second))
			if closed, err := e.Store.CloseApproval(context.WithoutCancel(ctx), ap.ID, store.ApprovalExpired, "slipway", why); err == nil && closed {
				return store.RunFailed, "approval timed out: " + why
			}
			continue // decided in the same moment: read the decision
		}
		select {
		case <-decided:
		case <-ctx.Done():
			if ar.cancelled.Load() {
				_, _ = e.Store.CloseApproval(context.WithoutCancel(ctx), ap.ID, store.ApprovalCancelled, "slipway", "run cancelled")
				return store.RunCancelled, "cancelled while waiting for approval"
			}
			// Stopping: the approval stays pending and the next start resumes it.
			return "", ""
		case <-tick.C:
		}
	}
}

// Decide records a person's decision on the run's pending approval.
func (e *Engine) Decide(ctx context.Context, runID int64, approve bool, by, comment string) (store.Approval, error) {
	state := store.ApprovalRejected
	if approve {
		state = store.ApprovalApproved
	}
	ap, err := e.Store.DecideApproval(ctx, runID, state, by, comment)
	if errors.Is(err, store.ErrConflict) {
		return ap, fmt.Errorf("run %d is not waiting for an approval: %w", runID, ErrNotWaiting)
	}
	if err == nil {
		e.decidedMu.Lock()
		if e.decided != nil {
			close(e.decided) // wakes every waiting approval to re-read its record
		}
		e.decided = make(chan struct{})
		e.decidedMu.Unlock()
	}
	return ap, err
}

// decisions returns a channel closed at the next decision.
func (e *Engine) decisions() <-chan struct{} {
	e.decidedMu.Lock()
	defer e.decidedMu.Unlock()
	if e.decided == nil {
		e.decided = make(chan struct{})
	}
	return e.decided
}

// ErrNotWaiting: a decision for a run that waits for none.
var ErrNotWaiting = errors.New("not waiting")

func (e *Engine) runURL(id int64) string {
	return e.Notifier.Link(fmt.Sprintf("/runs/%d", id))
}

// notifyEnd tells channels that a run succeeded or failed.
func (e *Engine) notifyEnd(ctx context.Context, r store.Run, state, reason string) {
	kind := map[string]string{store.RunSucceeded: notify.RunSucceeded, store.RunFailed: notify.RunFailed}[state]
	if kind == "" {
		return
	}
	e.Notifier.Notify(ctx, notify.Event{Kind: kind, App: r.App, URL: e.runURL(r.ID),
		Title: fmt.Sprintf("%s: run %d %s", r.App, r.ID, state), Text: reason,
		Fields: map[string]string{"run": strconv.FormatInt(r.ID, 10), "commit": shortSHA(r.Commit), "ref": r.Ref}})
}
