package secret

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref   string
		names []string
		key   string
		err   string
	}{
		{ref: "db-password", names: []string{"db-password"}},
		{ref: "db:password", names: []string{"db"}, key: "password"},
		{ref: "arn:slipway:secret:db", names: []string{"db"}},
		{ref: "arn:slipway:secret:db:user", names: []string{"db"}, key: "user"},
		{ref: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", names: []string{"prod/db-AbCdEf", "prod/db", "db-AbCdEf", "db"}},
		{ref: "arn:aws:secretsmanager:eu-west-1:1:secret:db-creds-Xy12Zq:password::", names: []string{"db-creds-Xy12Zq", "db-creds"}, key: "password"},
		{ref: "arn:aws:ssm:us-east-1:123456789012:parameter/prod/api/key", names: []string{"prod/api/key", "key"}},
		{ref: "/prod/api/key", names: []string{"prod/api/key", "key"}},
		{ref: "", err: "empty secret reference"},
		{ref: "arn:slipway:vault:x", err: "arn:slipway:secret:NAME"},
		{ref: "arn:slipway:secret", err: "arn:slipway:secret:NAME"},
		{ref: "arn:slipway:secret:", err: "arn:slipway:secret:NAME"},
		{ref: "arn:slipway:secret:a:b:c", err: "arn:slipway:secret:NAME"},
		{ref: "arn:aws:s3:::bucket:x", err: "only Secrets Manager and SSM"},
		{ref: "arn:aws:secretsmanager:r:a:key:x", err: "Secrets Manager ARN reads"},
		{ref: "a:b:c:d:e", err: "NAME[:json-key"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			r, err := ParseRef(tc.ref)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Names, tc.names) || r.JSONKey != tc.key {
				t.Fatalf("got %q key %q, want %q key %q", r.Names, r.JSONKey, tc.names, tc.key)
			}
		})
	}
}

func TestVaultResolve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := &Vault{Store: db, Keys: keys}
	must := func(name, app, env, val string) {
		if _, err := v.Set(ctx, name, app, env, val, "test"); err != nil {
			t.Fatal(err)
		}
	}
	must("db", "", "", "global-value-1")
	must("db", "shop", "", "app-value-2")
	must("db", "shop", "production", `{"password":"prod-pw-3","port":5432}`)
	must("api-key", "shop", "", "old-key-4")
	if n, _ := v.Set(ctx, "api-key", "shop", "", "new-key-5", "test"); n != 2 {
		t.Fatalf("second set made version %d, want 2", n)
	}
	for _, tc := range []struct{ app, env, ref, want, err string }{
		{"shop", "staging", "db", "app-value-2", ""},
		{"other", "staging", "db", "global-value-1", ""},
		{"shop", "production", "db:password", "prod-pw-3", ""},
		{"shop", "production", "arn:slipway:secret:db:port", "5432", ""},
		{"shop", "production", "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf:password::", "prod-pw-3", ""},
		{"shop", "staging", "arn:aws:ssm:us-east-1:1:parameter/shop/api-key", "new-key-5", ""},
		{"shop", "staging", "db:password", "", "not a JSON object"},
		{"shop", "production", "db:user", "", `no JSON key "user"`},
		{"shop", "staging", "missing", "", "secret missing is not set for app shop environment staging"},
	} {
		got, err := v.Resolve(ctx, tc.app, tc.env, tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s/%s %s: err = %v, want %q", tc.app, tc.env, tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s/%s %s = %q, %v; want %q", tc.app, tc.env, tc.ref, got, err, tc.want)
		}
	}
	if _, err := v.Set(ctx, "bad:name", "", "", "x", "t"); err == nil {
		t.Fatal("a name with a colon was accepted")
	}
	// Sealed at rest: no value is in the database files.
	db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "slipway.db*"))
	if len(files) == 0 {
		t.Fatal("no database file found")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, val := range []string{"global-value-1", "app-value-2", "prod-pw-3", "new-key-5"} {
			if bytes.Contains(b, []byte(val)) {
				t.Fatalf("%s holds the plain value %q", f, val)
			}
		}
	}
}
