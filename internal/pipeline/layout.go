package pipeline

import "github.com/slipway-dev/slipway/internal/slipwayfile"

// slipway.yaml's types (package slipwayfile reads the file), under the
// names the engine uses for the stages and actions of any run.
type (
	Action   = slipwayfile.Action
	Stage    = slipwayfile.Stage
	Duration = slipwayfile.Duration
)

// runSpec is what a run executes: slipway.yaml's stages, or the stages a
// GitHub Actions workflow compiles to (plan set: its jobs, and for each
// job action, the job and matrix combination it runs).
type runSpec struct {
	*slipwayfile.Spec
	plan *wfPlan
}
