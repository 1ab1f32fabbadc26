package cli

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestParseRetention(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90d", 90 * 24 * time.Hour, ""},
		{"0", 0, ""},
		{"0d", 0, ""},
		{"720h", 720 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"-1h", 0, "negative"},
		{"-3d", 0, "not a number of days"},
		{"1.5d", 0, "not a number of days"},
		{"d", 0, "not a number of days"},
		{"ninety", 0, "not a duration"},
		{"999999999d", 0, "not a number of days"}, // beyond time.Duration
	}
	for _, c := range cases {
		got, err := parseRetention(c.in)
		if c.wantErr == "" && (err != nil || got != c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
		if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%q: %v %v, want an error saying %q", c.in, got, err, c.wantErr)
		}
	}
}

// A bad SLIPWAY_RUN_RETENTION stops the server before it starts, naming
// the variable and the flag; the flag given on the command line wins.
func TestRunRetentionFromEnvironment(t *testing.T) {
	t.Setenv("SLIPWAY_RUN_RETENTION", "soon")
	quiet := func() *cobra.Command {
		cmd := serverCmd()
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return cmd
	}
	cmd := quiet()
	cmd.SetArgs([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:-1"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "SLIPWAY_RUN_RETENTION (--run-retention)") {
		t.Fatalf("bad environment value: %v", err)
	}
	cmd = quiet()
	cmd.SetArgs([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:-1", "--run-retention", "7d"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("with --run-retention given: %v (want only the bad --addr to fail)", err)
	}
}
