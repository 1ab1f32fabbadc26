package cli

import (
	"reflect"
	"testing"
)

func TestSplitLastOutput(t *testing.T) {
	cases := []struct {
		reason string
		head   string
		output []string
	}{
		{"deployment timed out", "deployment timed out", nil},
		{"green task failed (1 failed launches or health checks): task abc stopped: essential container web exited with code 3; last output: starting | boom: config missing",
			"green task failed (1 failed launches or health checks): task abc stopped: essential container web exited with code 3", []string{"starting", "boom: config missing"}},
		{"unable to start a task: container web could not start: exec: \"/app-typo\": stat /app-typo: no such file or directory (exit code 127)",
			"unable to start a task: container web could not start: exec: \"/app-typo\": stat /app-typo: no such file or directory (exit code 127)", nil},
	}
	for _, c := range cases {
		head, output := splitLastOutput(c.reason)
		if head != c.head || !reflect.DeepEqual(output, c.output) {
			t.Errorf("splitLastOutput(%q) = %q %q, want %q %q", c.reason, head, output, c.head, c.output)
		}
	}
}
