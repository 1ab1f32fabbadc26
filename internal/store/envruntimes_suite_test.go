package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnvRuntimes(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a", "b")
		if _, _, err := db.EnvRuntime(ctx, "a", "prod"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("EnvRuntime of a Docker environment: %v, want ErrNotFound", err)
		}
		from := time.Now()
		k := EnvRuntime{App: "a", Env: "prod", Kind: RuntimeKubernetes, Context: "c1", Namespace: "shop", UpdatedBy: "alice"}
		if err := db.SetEnvRuntime(ctx, k, []byte{1, 0, 0xff}); err != nil {
			t.Fatal(err)
		}
		got, sealed, err := db.EnvRuntime(ctx, "a", "prod")
		if err != nil || got.Kind != RuntimeKubernetes || got.Context != "c1" || got.Namespace != "shop" || got.UpdatedBy != "alice" ||
			!within(got.UpdatedAt, from, time.Now()) || got.Retired || !bytes.Equal(sealed, []byte{1, 0, 0xff}) {
			t.Fatalf("EnvRuntime = %+v, %v, %v", got, sealed, err)
		}
		// Set again: replaced.
		k.Namespace, k.UpdatedBy = "shop2", "bob"
		if err := db.SetEnvRuntime(ctx, k, []byte{2}); err != nil {
			t.Fatal(err)
		}
		if got, sealed, _ = db.EnvRuntime(ctx, "a", "prod"); got.Namespace != "shop2" || !bytes.Equal(sealed, []byte{2}) {
			t.Fatalf("after replacing: %+v %v", got, sealed)
		}

		// With services in it, the runtime stays as it is, naming them.
		if _, err := db.CreateService(ctx, Service{App: "a", Env: "prod", Name: "web", Family: "web", Revision: 1, Desired: 1}); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{RuntimeDocker, RuntimeKubernetes} {
			err := db.SetEnvRuntime(ctx, EnvRuntime{App: "a", Env: "prod", Kind: kind, Namespace: "x", UpdatedBy: "bob"}, []byte{3})
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "has services (web)") {
				t.Fatalf("SetEnvRuntime(%s) with a service: %v", kind, err)
			}
		}
		// A Docker environment with services may be set to Docker again.
		if _, err := db.CreateService(ctx, Service{App: "b", Env: "staging", Name: "web", Family: "web", Revision: 1, Desired: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetEnvRuntime(ctx, EnvRuntime{App: "b", Env: "staging", Kind: RuntimeDocker, UpdatedBy: "bob"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteService(ctx, "a", "prod", "web"); err != nil {
			t.Fatal(err)
		}
		if err := db.SetEnvRuntime(ctx, EnvRuntime{App: "a", Env: "staging", Kind: RuntimeKubernetes, Namespace: "st", UpdatedBy: "bob"}, []byte{4}); err != nil {
			t.Fatal(err)
		}
		list, seals, err := db.ListEnvRuntimes(ctx)
		if err != nil || len(list) != 2 || list[0].Env != "prod" || list[1].Env != "staging" || !bytes.Equal(seals[1], []byte{4}) {
			t.Fatalf("ListEnvRuntimes = %+v %v %v", list, seals, err)
		}

		// Deleting the app retires its runtimes: no longer the
		// environment's, still listed until forgotten.
		if err := db.DeleteApp(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.EnvRuntime(ctx, "a", "prod"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("EnvRuntime of a deleted app: %v", err)
		}
		list, _, _ = db.ListEnvRuntimes(ctx)
		if len(list) != 2 || !list[0].Retired || !list[1].Retired {
			t.Fatalf("after DeleteApp: %+v", list)
		}
		if err := db.ForgetRetiredEnvRuntime(ctx, "a", "prod"); err != nil {
			t.Fatal(err)
		}
		list, _, _ = db.ListEnvRuntimes(ctx)
		if len(list) != 1 || list[0].Env != "staging" {
			t.Fatalf("after ForgetRetiredEnvRuntime: %+v", list)
		}
		// Back to Docker: the row goes.
		if err := db.SetEnvRuntime(ctx, EnvRuntime{App: "b", Env: "prod", Kind: RuntimeKubernetes, Namespace: "p", UpdatedBy: "bob"}, []byte{5}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetEnvRuntime(ctx, EnvRuntime{App: "b", Env: "prod", Kind: RuntimeDocker, UpdatedBy: "bob"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.EnvRuntime(ctx, "b", "prod"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after setting Docker again: %v", err)
		}
	})
}
