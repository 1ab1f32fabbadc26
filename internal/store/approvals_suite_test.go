package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// approvalFixture is a running run whose approval action waits.
type approvalFixture struct {
	db     *DB
	run    Run
	action Action // the approval action, waiting
	other  Action // a deploy action of the same run
}

func newApprovalFixture(t *testing.T, db *DB) approvalFixture {
	t.Helper()
	r, as := conformStarted(t, db, "a", "queued", conformActions...)
	return approvalFixture{db: db, run: r, action: setAction(t, db, as[4], RunWaiting), other: as[5]}
}

func (f approvalFixture) request() Approval {
	return Approval{RunID: f.run.ID, ActionID: f.action.ID, Stage: f.action.Stage, Action: f.action.Name,
		Message: "ship it?", ReviewURL: "https://example.com/review?x='1'", Deadline: nanoTime}
}

func TestConformOpenApproval(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		f := newApprovalFixture(t, conformOpen(t, s, "a"))
		db := f.db
		if got, err := db.ListApprovals(ctx, f.run.ID); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListApprovals of none = %v, %v; want an empty list", got, err)
		}
		if _, err := db.GetApproval(ctx, 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetApproval of none: %v, want ErrNotFound", err)
		}
		before := time.Now()
		first, created, err := db.OpenApproval(ctx, f.request(), false)
		if err != nil || !created {
			t.Fatalf("OpenApproval = %+v, %v, %v", first, created, err)
		}
		if first.ID == 0 || first.State != ApprovalPending || first.DecidedAt != nil || first.DecidedBy != "" {
			t.Fatalf("a new approval: %+v", first)
		}
		checkRecent(t, "RequestedAt", first.RequestedAt, before, time.Now())
		checkStoredTime(t, "Deadline", first.Deadline, nanoTime)
		got, err := db.GetApproval(ctx, first.ID)
		if err != nil || !reflect.DeepEqual(got, first) {
			t.Fatalf("GetApproval = %+v, %v\nOpenApproval returned %+v", got, err, first)
		}

		// Resuming returns the request as it was, deadline and all.
		later := f.request()
		later.Deadline = nanoTime.Add(time.Hour)
		resumed, created, err := db.OpenApproval(ctx, later, true)
		if err != nil || created || !reflect.DeepEqual(resumed, first) {
			t.Fatalf("resumed OpenApproval = %+v, %v, %v; want %+v", resumed, created, err, first)
		}

		// A new request replaces the pending one.
		second, created, err := db.OpenApproval(ctx, later, false)
		if err != nil || !created || second.ID == first.ID {
			t.Fatalf("second OpenApproval = %+v, %v, %v", second, created, err)
		}
		checkStoredTime(t, "second Deadline", second.Deadline, later.Deadline)
		old, _ := db.GetApproval(ctx, first.ID)
		if old.State != ApprovalCancelled || old.DecidedBy != "slipway" || old.Comment != "superseded by a new request" || old.DecidedAt == nil {
			t.Fatalf("the replaced request: %+v", old)
		}
		checkRecent(t, "DecidedAt", *old.DecidedAt, before, time.Now())
		list, err := db.ListApprovals(ctx, f.run.ID)
		if err != nil || !reflect.DeepEqual(list, []Approval{old, second}) {
			t.Fatalf("ListApprovals = %+v, %v", list, err)
		}
		// Resuming after a decision returns the decision.
		decided, err := db.DecideApproval(ctx, f.run.ID, ApprovalApproved, "ann", "")
		if err != nil {
			t.Fatal(err)
		}
		if got, created, err := db.OpenApproval(ctx, later, true); err != nil || created || !reflect.DeepEqual(got, decided) {
			t.Fatalf("resumed after a decision: %+v, %v, %v; want %+v", got, created, err, decided)
		}

		// Resuming an action that never asked opens a request.
		other := Approval{RunID: f.run.ID, ActionID: f.other.ID, Stage: f.other.Stage, Action: f.other.Name, Deadline: nanoTime}
		got, created, err = db.OpenApproval(ctx, other, true)
		if err != nil || !created || got.State != ApprovalPending || got.ActionID != f.other.ID {
			t.Fatalf("resume with no request = %+v, %v, %v", got, created, err)
		}
		if list, _ := db.ListApprovals(ctx, f.run.ID); len(list) != 3 || list[2].ID != got.ID {
			t.Fatalf("ListApprovals = %+v, want three in order", list)
		}
		if list, _ := db.ListApprovals(ctx, f.run.ID+1); list == nil || len(list) != 0 {
			t.Fatalf("ListApprovals of another run = %+v", list)
		}
	})
}

func TestConformDecideApproval(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		cases := []struct {
			name        string
			setup       func(t *testing.T, f approvalFixture)
			state       string
			wantDecided bool
		}{
			{"approve", func(t *testing.T, f approvalFixture) {}, ApprovalApproved, true},
			{"reject", func(t *testing.T, f approvalFixture) {}, ApprovalRejected, true},
			{"already decided", func(t *testing.T, f approvalFixture) {
				if _, err := f.db.DecideApproval(ctx, f.run.ID, ApprovalRejected, "bob", "no"); err != nil {
					t.Fatal(err)
				}
			}, ApprovalApproved, false},
			{"closed by its deadline", func(t *testing.T, f approvalFixture) {
				list, _ := f.db.ListApprovals(ctx, f.run.ID)
				if ok, err := f.db.CloseApproval(ctx, list[0].ID, ApprovalExpired, "slipway", "deadline passed"); !ok || err != nil {
					t.Fatalf("CloseApproval = %v, %v", ok, err)
				}
			}, ApprovalApproved, false},
			{"its action no longer waits", func(t *testing.T, f approvalFixture) {
				setAction(t, f.db, f.action, RunCancelled)
			}, ApprovalApproved, false},
			{"no request", func(t *testing.T, f approvalFixture) {
				if _, err := f.db.write.ExecContext(ctx, `DELETE FROM approvals WHERE run_id = ?`, f.run.ID); err != nil {
					t.Fatal(err)
				}
			}, ApprovalApproved, false},
		}
		db := conformOpen(t, s, "a")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f := newApprovalFixture(t, db)
				opened, _, err := f.db.OpenApproval(ctx, f.request(), false)
				if err != nil {
					t.Fatal(err)
				}
				c.setup(t, f)
				before := time.Now()
				stored, _ := f.db.GetApproval(ctx, opened.ID)
				got, err := f.db.DecideApproval(ctx, f.run.ID, c.state, "ann", "looks good")
				if !c.wantDecided {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("DecideApproval = %v, want ErrConflict", err)
					}
					if after, _ := f.db.GetApproval(ctx, opened.ID); !reflect.DeepEqual(after, stored) {
						t.Fatalf("a refused decision changed %+v to %+v", stored, after)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got.ID != opened.ID || got.State != c.state || got.DecidedBy != "ann" || got.Comment != "looks good" || got.DecidedAt == nil {
					t.Fatalf("decision %+v", got)
				}
				checkRecent(t, "DecidedAt", *got.DecidedAt, before, time.Now())
				if after, err := f.db.GetApproval(ctx, opened.ID); err != nil || !reflect.DeepEqual(after, got) {
					t.Fatalf("GetApproval = %+v, %v\nDecideApproval returned %+v", after, err, got)
				}
				if _, err := f.db.DecideApproval(ctx, f.run.ID, c.state, "bob", ""); !errors.Is(err, ErrConflict) {
					t.Fatalf("a second decision: %v, want ErrConflict", err)
				}
			})
		}
	})
}

func TestConformCloseApproval(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		f := newApprovalFixture(t, conformOpen(t, s, "a"))
		a, _, err := f.db.OpenApproval(ctx, f.request(), false)
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		if ok, err := f.db.CloseApproval(ctx, a.ID, ApprovalExpired, "slipway", "deadline passed"); !ok || err != nil {
			t.Fatalf("CloseApproval = %v, %v; want true", ok, err)
		}
		got, _ := f.db.GetApproval(ctx, a.ID)
		if got.State != ApprovalExpired || got.DecidedBy != "slipway" || got.Comment != "deadline passed" || got.DecidedAt == nil {
			t.Fatalf("closed approval %+v", got)
		}
		checkRecent(t, "DecidedAt", *got.DecidedAt, before, time.Now())
		if ok, err := f.db.CloseApproval(ctx, a.ID, ApprovalCancelled, "x", "again"); ok || err != nil {
			t.Fatalf("CloseApproval of a closed approval = %v, %v; want false", ok, err)
		}
		if again, _ := f.db.GetApproval(ctx, a.ID); !reflect.DeepEqual(again, got) {
			t.Fatalf("closing again changed it: %+v", again)
		}
		if ok, err := f.db.CloseApproval(ctx, a.ID+100, ApprovalExpired, "x", ""); ok || err != nil {
			t.Fatalf("CloseApproval of no approval = %v, %v; want false", ok, err)
		}
	})
}

// An action has one pending approval, and a request is decided once,
// however many servers act on it at once.
func TestConformApprovalsConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		pending := func(t *testing.T, f approvalFixture) []Approval {
			t.Helper()
			list, err := f.db.ListApprovals(ctx, f.run.ID)
			if err != nil {
				t.Fatal(err)
			}
			var out []Approval
			for _, a := range list {
				if a.State == ApprovalPending {
					out = append(out, a)
				}
			}
			return out
		}
		db := conformOpen(t, s, "a")
		t.Run("new requests", func(t *testing.T) {
			f := newApprovalFixture(t, db)
			ids := make([]int64, racers)
			errs := race(t, db, func(i int) error {
				a, created, err := f.db.OpenApproval(ctx, f.request(), false)
				if err == nil && !created {
					err = errors.New("not created")
				}
				ids[i] = a.ID
				return err
			})
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			p := pending(t, f)
			list, _ := f.db.ListApprovals(ctx, f.run.ID)
			if len(p) != 1 || len(list) != racers {
				t.Fatalf("%d pending of %d requests, want 1 of %d", len(p), len(list), racers)
			}
			// The one pending is the last request made.
			if p[0].ID != list[len(list)-1].ID {
				t.Fatalf("pending %d, newest %d", p[0].ID, list[len(list)-1].ID)
			}
		})
		t.Run("resumed waits", func(t *testing.T) {
			f := newApprovalFixture(t, db)
			ids := make([]int64, racers)
			createdBy := make([]bool, racers)
			errs := race(t, db, func(i int) error {
				a, created, err := f.db.OpenApproval(ctx, f.request(), true)
				ids[i], createdBy[i] = a.ID, created
				return err
			})
			n := 0
			for i, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
				if ids[i] != ids[0] {
					t.Fatalf("resumed waits got approvals %v, want one", ids)
				}
				if createdBy[i] {
					n++
				}
			}
			if list, _ := f.db.ListApprovals(ctx, f.run.ID); len(list) != 1 || n != 1 {
				t.Fatalf("%d approvals, %d said created; want 1 and 1", len(list), n)
			}
		})
		t.Run("decisions", func(t *testing.T) {
			f := newApprovalFixture(t, db)
			a, _, err := f.db.OpenApproval(ctx, f.request(), false)
			if err != nil {
				t.Fatal(err)
			}
			states := []string{ApprovalApproved, ApprovalRejected}
			errs := race(t, db, func(i int) error {
				if i == racers-1 { // the deadline, at the same time
					if ok, err := f.db.CloseApproval(ctx, a.ID, ApprovalExpired, "slipway", "deadline"); err != nil || !ok {
						return errors.Join(err, Conflictf("not closed"))
					}
					return nil
				}
				_, err := f.db.DecideApproval(ctx, f.run.ID, states[i%2], "person", "")
				return err
			})
			winner := oneWinner(t, errs, ErrConflict)
			got, _ := f.db.GetApproval(ctx, a.ID)
			want := ApprovalExpired
			if winner != racers-1 {
				want = states[winner%2]
			}
			if got.State != want {
				t.Fatalf("approval %s, want the winner %d's %s", got.State, winner, want)
			}
		})
	})
}
