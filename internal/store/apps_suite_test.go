package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestAppsAreCreatedReadAndListed(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if apps, err := db.ListApps(ctx); err != nil || apps == nil || len(apps) != 0 {
			t.Fatalf("ListApps of an empty store = %#v, %v; want an empty, non-nil list", apps, err)
		}
		created, err := db.CreateApp(ctx, App{Name: "shop", RegistryRepo: "shop", Environments: []string{"staging", "production"}})
		if err != nil {
			t.Fatal(err)
		}
		if created.CreatedAt.IsZero() || created.CreatedAt.Nanosecond()%1000 != 0 {
			t.Fatalf("CreatedAt %v: want a time at microsecond precision", created.CreatedAt)
		}
		if _, err := db.CreateApp(ctx, App{Name: "blog", RegistryRepo: "blog-images"}); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetApp(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		// A new app: no source, no webhook, builds in the sandbox; its
		// environments, made at once, are listed by name.
		want := App{Name: "shop", RegistryRepo: "shop", Environments: []string{"production", "staging"}, CreatedAt: created.CreatedAt,
			Build: BuildSettings{Executor: ExecutorSandbox}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetApp:\n got %#v\nwant %#v", got, want)
		}
		blog, err := db.GetApp(ctx, "blog")
		if err != nil || blog.RegistryRepo != "blog-images" || blog.Environments == nil || len(blog.Environments) != 0 {
			t.Fatalf("an app without environments: %#v, %v; want an empty, non-nil list", blog, err)
		}
		apps, err := db.ListApps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(apps) != 2 || apps[0].Name != "blog" || !reflect.DeepEqual(apps[1], want) {
			t.Fatalf("ListApps = %#v; want blog, then shop as GetApp has it", apps)
		}
		if _, err := db.GetApp(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetApp of an unknown app: %v, want ErrNotFound", err)
		}
	})
}

func TestCreateAppRefusesATakenName(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		// The cases share a database, their names made unique by the
		// case's number; SHOP is the app made before each.
		db := s.open(t)
		cases := []struct {
			name  string
			app   App
			taken bool   // refused with ErrExists
			envs  string // SHOP's environments after it
		}{
			{"a new name", App{Name: "blog", RegistryRepo: "blog"}, false, "[staging]"},
			{"the same name", App{Name: "SHOP", RegistryRepo: "other", Environments: []string{"production"}}, true, "[staging]"},
			{"an environment twice", App{Name: "blog", RegistryRepo: "blog", Environments: []string{"qa", "qa"}}, true, "[staging]"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				shop := fmt.Sprintf("shop%d", i)
				mustApps(t, db, shop)
				if c.app.Name == "SHOP" {
					c.app.Name = shop
				} else {
					c.app.Name += fmt.Sprint(i)
				}
				_, err := db.CreateApp(ctx, c.app)
				if c.taken != errors.Is(err, ErrExists) || (c.taken && !errors.Is(err, ErrConflict)) || (!c.taken && err != nil) {
					t.Fatalf("CreateApp = %v; want refused as taken: %v", err, c.taken)
				}
				got, err := db.GetApp(ctx, shop)
				if err != nil || got.RegistryRepo != shop || fmt.Sprint(got.Environments) != c.envs {
					t.Fatalf("%s after it: %+v, %v", shop, got, err)
				}
				// A refused app leaves nothing behind, environments included.
				if _, err := db.GetApp(ctx, c.app.Name); c.taken && c.app.Name != shop && !errors.Is(err, ErrNotFound) {
					t.Fatalf("the refused app %s: %v, want ErrNotFound", c.app.Name, err)
				}
			})
		}
	})
}

// mustApps makes apps with a staging environment each.
func mustApps(t *testing.T, db *DB, apps ...string) {
	t.Helper()
	for _, app := range apps {
		if _, err := db.CreateApp(context.Background(), App{Name: app, RegistryRepo: app, Environments: []string{"staging"}}); err != nil {
			t.Fatal(err)
		}
	}
}

// Apps made at once under one name: one is made, the others are told the
// name is taken.
func TestConcurrentCreateAppOfOneName(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		errs := race(t, db, func(i int) error {
			_, err := db.CreateApp(ctx, App{Name: "shop", RegistryRepo: fmt.Sprintf("repo%d", i), Environments: []string{"staging", "production"}})
			return err
		})
		won := oneWinner(t, errs, ErrExists)
		app, err := db.GetApp(ctx, "shop")
		if err != nil || app.RegistryRepo != fmt.Sprintf("repo%d", won) || fmt.Sprint(app.Environments) != "[production staging]" {
			t.Fatalf("won by %d; the app is %+v, %v", won, app, err)
		}
	})
}

func TestAppSourceWebhookSecretAndBuildSettings(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "shop")
		if secret, err := db.AppWebhookSecret(ctx, "shop"); err != nil || secret != nil {
			t.Fatalf("webhook secret of a new app = %q, %v; want none", secret, err)
		}
		src := AppSource{URL: "https://git.example/shop.git", Credentials: []byte{0, 1, 2, 0xff}}
		steps := []struct {
			name       string
			src        AppSource
			secret     []byte
			keepSecret bool
			wantSecret []byte
		}{
			{"set with a secret", src, []byte("sealed-1\x00\xfe"), false, []byte("sealed-1\x00\xfe")},
			{"set keeping the secret", AppSource{URL: "https://git.example/shop2.git"}, []byte("ignored"), true, []byte("sealed-1\x00\xfe")},
			{"replace the secret", src, []byte("sealed-2"), false, []byte("sealed-2")},
			{"drop the secret", src, nil, false, nil},
		}
		for _, st := range steps {
			a, err := db.SetAppSource(ctx, "shop", st.src, st.secret, st.keepSecret)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if a.Name != "shop" || a.SourceURL != st.src.URL || a.SourceCredentials != (len(st.src.Credentials) > 0) || a.HasWebhook != (st.wantSecret != nil) {
				t.Fatalf("%s: the app is %+v", st.name, a)
			}
			secret, err := db.AppWebhookSecret(ctx, "shop")
			if err != nil || !bytes.Equal(secret, st.wantSecret) || (st.wantSecret == nil) != (secret == nil) {
				t.Fatalf("%s: webhook secret %q, %v; want %q", st.name, secret, err, st.wantSecret)
			}
			stored, err := db.GetAppSource(ctx, "shop")
			if err != nil || stored.URL != st.src.URL || !bytes.Equal(stored.Credentials, st.src.Credentials) {
				t.Fatalf("%s: GetAppSource = %+v, %v", st.name, stored, err)
			}
		}

		for _, b := range []BuildSettings{{Executor: ExecutorHost, DockerAccess: true}, {Executor: ExecutorSandbox, DockerAccess: true}, {Executor: ExecutorSandbox}} {
			a, err := db.SetBuildSettings(ctx, "shop", b)
			if err != nil || a.Build != b {
				t.Fatalf("SetBuildSettings(%+v) = %+v, %v", b, a.Build, err)
			}
			if got, _ := db.GetApp(ctx, "shop"); got.Build != b || got.SourceURL != src.URL {
				t.Fatalf("after SetBuildSettings(%+v): %+v", b, got)
			}
		}

		// Each of them on an app that is not there.
		for name, err := range map[string]error{
			"SetAppSource":     func() error { _, err := db.SetAppSource(ctx, "nope", src, nil, false); return err }(),
			"SetAppSource/k":   func() error { _, err := db.SetAppSource(ctx, "nope", src, nil, true); return err }(),
			"GetAppSource":     func() error { _, err := db.GetAppSource(ctx, "nope"); return err }(),
			"AppWebhookSecret": func() error { _, err := db.AppWebhookSecret(ctx, "nope"); return err }(),
			"SetBuildSettings": func() error {
				_, err := db.SetBuildSettings(ctx, "nope", BuildSettings{Executor: ExecutorHost})
				return err
			}(),
			"DeleteApp": db.DeleteApp(ctx, "nope"),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s of an unknown app: %v, want ErrNotFound", name, err)
			}
		}
		if ok, err := db.UpgradeAppSource(ctx, "nope", "", AppSource{}); ok || err != nil {
			t.Errorf("UpgradeAppSource of an unknown app = %v, %v; want false", ok, err)
		}
		if urls, err := db.UnsealedSourceURLs(ctx); err != nil || urls == nil || len(urls) != 0 {
			t.Errorf("UnsealedSourceURLs = %#v, %v; want an empty map", urls, err)
		}
	})
}

// DeleteApp waits for what is still working on the app, then takes with
// it everything that is the app's, and nothing of another app.
func TestDeleteApp(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		cases := []struct {
			name     string
			setup    func(t *testing.T, db *DB, shop, blog string) // besides the usual rows
			conflict bool
		}{
			{"nothing running", func(*testing.T, *DB, string, string) {}, false},
			{"a deployment in progress", func(t *testing.T, db *DB, shop, _ string) {
				mustDeploy(t, db, Deployment{App: shop, Env: "staging", Service: "web", FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2})
			}, true},
			{"a service's first rollout in progress", func(t *testing.T, db *DB, shop, _ string) {
				mustDeploy(t, db, Deployment{App: shop, Env: "staging", Service: "web", ToFamily: "web", ToRevision: 1})
			}, false},
			{"an ended deployment", func(t *testing.T, db *DB, shop, _ string) {
				d := mustDeploy(t, db, Deployment{App: shop, Env: "staging", Service: "web", FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2})
				d.State = DeployRolledBack
				if err := db.UpdateDeployment(context.Background(), d, "rolled back"); err != nil {
					t.Fatal(err)
				}
			}, false},
			{"a queued run", func(t *testing.T, db *DB, shop, _ string) { mustRun(t, db, shop, RunQueued) }, true},
			{"a running run", func(t *testing.T, db *DB, shop, _ string) { mustRun(t, db, shop, RunRunning) }, true},
			{"a run waiting for an approval", func(t *testing.T, db *DB, shop, _ string) { mustRun(t, db, shop, RunWaiting) }, true},
			{"ended runs", func(t *testing.T, db *DB, shop, _ string) {
				for _, st := range []string{RunSucceeded, RunFailed, RunCancelled, RunSuperseded} {
					mustRun(t, db, shop, st)
				}
			}, false},
			{"another app's deployment and run", func(t *testing.T, db *DB, _, blog string) {
				mustDeploy(t, db, Deployment{App: blog, Env: "staging", Service: "web", FromFamily: "web", FromRevision: 1, ToFamily: "web", ToRevision: 2})
				mustRun(t, db, blog, RunRunning)
			}, false},
		}
		// The cases share a database, each with apps of its own.
		db := s.open(t)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				shop, blog := fmt.Sprintf("shop%d", i), fmt.Sprintf("blog%d", i)
				mustApps(t, db, shop, blog)
				for _, app := range []string{shop, blog} {
					if _, err := db.CreateService(ctx, Service{App: app, Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1}); err != nil {
						t.Fatal(err)
					}
					if err := db.AddServiceEvent(ctx, app, "staging", "web", "steady"); err != nil {
						t.Fatal(err)
					}
					if err := db.PutChannel(ctx, Channel{App: app, Name: "ops", Type: "webhook", Events: []string{"run.failed"}}, []byte("sealed")); err != nil {
						t.Fatal(err)
					}
					if _, err := db.SetAppSource(ctx, app, AppSource{URL: "https://git.example/" + app}, []byte("secret"), false); err != nil {
						t.Fatal(err)
					}
				}
				c.setup(t, db, shop, blog)
				before := appRows(t, db, shop)
				blogBefore := appRows(t, db, blog)
				err := db.DeleteApp(ctx, shop)
				if c.conflict {
					if !errors.Is(err, ErrConflict) || errors.Is(err, ErrExists) {
						t.Fatalf("DeleteApp = %v, want a conflict", err)
					}
					if after := appRows(t, db, shop); !reflect.DeepEqual(after, before) {
						t.Fatalf("a refused delete changed the app's rows: %v, were %v", after, before)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.GetApp(ctx, shop); !errors.Is(err, ErrNotFound) {
					t.Fatalf("GetApp after the delete: %v", err)
				}
				if after := appRows(t, db, shop); len(after) != 0 {
					t.Fatalf("rows of the deleted app left: %v", after)
				}
				if after := appRows(t, db, blog); !reflect.DeepEqual(after, blogBefore) {
					t.Fatalf("the other app's rows: %v, were %v", after, blogBefore)
				}
				apps, _ := db.ListApps(ctx)
				listed := map[string]App{}
				for _, a := range apps {
					listed[a.Name] = a
				}
				if _, ok := listed[shop]; ok || !listed[blog].HasWebhook {
					t.Fatalf("apps listed after the delete: %+v", apps)
				}
				if err := db.DeleteApp(ctx, shop); !errors.Is(err, ErrNotFound) {
					t.Fatalf("a second DeleteApp: %v, want ErrNotFound", err)
				}
			})
		}
	})
}

// appRows counts an app's rows by table, leaving out tables with none.
func appRows(t *testing.T, db *DB, app string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range []struct{ table, where string }{
		{"apps", "name = ?"}, {"environments", "app = ?"}, {"services", "app = ?"}, {"service_events", "app = ?"},
		{"deployments", "app = ?"}, {"runs", "app = ?"}, {"notify_channels", "app = ?"},
	} {
		var n int
		if err := db.read.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+q.table+` WHERE `+q.where, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[q.table] = n
		}
	}
	return out
}

// mustRun makes a run of app and puts it in state.
func mustRun(t *testing.T, db *DB, app, state string) Run {
	t.Helper()
	ctx := context.Background()
	r, err := db.CreateRun(ctx, Run{App: app, Trigger: "manual", Ref: "refs/heads/main", Commit: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	switch state {
	case RunQueued:
	case RunRunning, RunWaiting:
		err = db.SetRunState(ctx, r.ID, state, "")
	default:
		err = db.FinishRun(ctx, r.ID, state, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	r.State = state
	return r
}

// mustDeploy creates d with the fields a deployment needs filled in.
func mustDeploy(t *testing.T, db *DB, d Deployment) Deployment {
	t.Helper()
	if d.Strategy == "" {
		d.Strategy = "rolling"
	}
	if d.Settings == nil {
		d.Settings = []byte(`{}`)
	}
	if d.Phase == "" {
		d.Phase = "Created"
	}
	d, err := db.CreateDeployment(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
