// Package layers holds the import rules between Slipway's packages, as
// depguard rules would: a lower layer never reaches up into a higher one.
package layers

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/slipway-dev/slipway/internal/"

func TestImportLayers(t *testing.T) {
	for _, rule := range []struct {
		pkg    string
		forbid []string
		why    string
	}{
		{"store", []string{"server", "pipeline", "deploy", "source", "lb"}, "the store is the bottom layer: every other package uses it"},
		{"lb", []string{"store", "server", "deploy", "pipeline"}, "the load balancer runs as its own process (slipway proxy), configured over its control API"},
		{"slipwayfile", []string{"pipeline", "server", "source"}, "reading slipway.yaml needs no engine: the source service parses it at push time"},
		{"source", []string{"pipeline", "server"}, "a push records runs; the engine runs them"},
		{"workflow", []string{"pipeline", "server", "source", "store"}, "workflow files are parsed and validated on their own"},
		{"web", []string{"server", "store"}, "templates and rendering only; handlers live in server"},
		{"specfile", []string{"pipeline", "slipwayfile", "workflow", "server"}, "the YAML error helpers every file format uses"},
		{"blob", []string{"store", "server", "pipeline"}, "blob storage knows nothing of what it stores"},
	} {
		t.Run(rule.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+rule.pkg).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", rule.pkg, err)
			}
			deps := strings.Fields(string(out))
			for _, f := range rule.forbid {
				if slices.Contains(deps, module+f) {
					t.Errorf("internal/%s imports internal/%s (directly or not): %s", rule.pkg, f, rule.why)
				}
			}
		})
	}
}
