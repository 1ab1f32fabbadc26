package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The database URL's password, given in the environment, never shows in
// `slipway server --help` (a flag's default would print it).
func TestServerHelpHidesTheDatabasePassword(t *testing.T) {
	t.Setenv("SLIPWAY_DATABASE", "postgres://slipway:hunter2pw@db:5432/slipway")
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"server", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2pw") || !strings.Contains(out.String(), "--database") {
		t.Fatalf("help:\n%s", out.String())
	}
}

// Bad several-servers settings are refused before anything starts, naming
// the flag and the fix.
func TestServerClusterFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"database not postgres", []string{"--database", "mysql://x"}, nil, "--database: database: want a URL such as postgres://"},
		{"advertise with credentials", []string{"--advertise-url", "https://u:p@ctl.example:8443"}, nil, "--advertise-url: \"https://u:xxxxx@ctl.example:8443\" holds a user name"},
		{"advertise not http", []string{"--advertise-url", "ctl.example:8443"}, nil, "--advertise-url: \"ctl.example:8443\" is not an http(s)://HOST[:PORT] URL"},
		{"lease too short", []string{"--lease-ttl", "100ms"}, nil, "--lease-ttl 100ms: want between 1s and 5m"},
		{"lease env not a duration", nil, map[string]string{"SLIPWAY_LEASE_TTL": "soon"}, "SLIPWAY_LEASE_TTL \"soon\": want a duration such as 10s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			root := NewRoot()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"server", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}, c.args...))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// slipway status names the server that answered, says it runs the control
// loops on SQLite, and gives the same as JSON for scripts.
func TestCLIStatus(t *testing.T) {
	loggedIn(t)
	out, _, err := slipway(t, "", "status")
	if err != nil || !strings.Contains(out, "(answered)") || !strings.Contains(out, "control (held") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, _, err = slipway(t, "", "status", "--output", "json")
	var st struct {
		Server      string `json:"server"`
		Controlling bool   `json:"controlling"`
		Database    string `json:"database"`
		Servers     []struct {
			ID     string `json:"id"`
			Leases []struct {
				Name string `json:"name"`
			} `json:"leases"`
		} `json:"servers"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --output json: %v\n%s", err, out)
	}
	if !st.Controlling || st.Database != "sqlite" || len(st.Servers) != 1 || st.Servers[0].ID != st.Server ||
		len(st.Servers[0].Leases) != 1 || st.Servers[0].Leases[0].Name != "control" {
		t.Fatalf("status: %+v", st)
	}
}
