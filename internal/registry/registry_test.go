package registry

import (
	"context"
	"strings"
	"testing"
)

func TestNewReportsBadConfigurationAsError(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		expect string
	}{
		{"unknown driver", Config{Driver: "nosuchdriver", Parameters: map[string]any{}}, "nosuchdriver"},
		{"bad driver parameter", Config{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": t.TempDir(), "maxthreads": "many"}}, "maxthreads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg, err := New(context.Background(), c.cfg, nil)
			if err == nil || reg != nil {
				t.Fatalf("got %v, %v; want an error", reg, err)
			}
			if !strings.Contains(err.Error(), c.expect) {
				t.Fatalf("error %q does not name %q", err, c.expect)
			}
		})
	}
}
