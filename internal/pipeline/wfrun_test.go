package pipeline

import (
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/workflow"
)

func TestPlanWorkflow(t *testing.T) {
	src := `on: push
concurrency:
  group: deploy
  cancel-in-progress: true
jobs:
  build:
    runs-on: ubuntu-latest
    timeout-minutes: 7
    strategy:
      fail-fast: false
      max-parallel: 2
      matrix:
        go: ['1.22', '1.23']
        os: [linux]
        include:
          - go: '1.24'
            os: linux
            experimental: true
    steps:
      - run: echo
  named:
    name: test ${{ matrix.shard }} of ${{ github.ref_name }}
    strategy:
      matrix:
        shard: ${{ fromJSON('[1, 2]') }}
    runs-on: ubuntu-latest
    steps:
      - run: echo
  deploy:
    needs: [build, named]
    environment: production
    runs-on: ubuntu-latest
    steps:
      - run: echo
`
	wf, err := workflow.Parse(".github/workflows/ci.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{}
	plan, err := planWorkflow(wf, e.runContexts(runFor("refs/heads/main"), wf, ""))
	if err != nil {
		t.Fatal(err)
	}
	var names [][]string
	for _, j := range plan.jobs {
		var n []string
		for _, c := range j.combos {
			n = append(n, c.name)
		}
		names = append(names, n)
	}
	want := [][]string{{"build (1.22, linux)", "build (1.23, linux)", "build (1.24, linux, true)"}, {"test 1 of main", "test 2 of main"}, {"deploy"}}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("combinations %v, want %v", names, want)
	}
	b := plan.jobs[0]
	if b.timeout != 7*time.Minute || b.failFast || b.maxParallel != 2 || b.gate {
		t.Errorf("build: timeout %v fail-fast %v max-parallel %d gate %v", b.timeout, b.failFast, b.maxParallel, b.gate)
	}
	if d := plan.jobs[2]; !d.gate || d.timeout != defaultJobTimeout {
		t.Errorf("deploy: gate %v timeout %v", d.gate, d.timeout)
	}
	if m := workflowMode(wf); m != slipwayfile.ModeSuperseded {
		t.Errorf("mode %s", m)
	}
}

func TestPlanWorkflowRefusals(t *testing.T) {
	for _, c := range []struct{ name, job, want string }{
		{"bad timeout", "    timeout-minutes: ${{ fromJSON(github.event.nothing) }}\n", "timeout-minutes"},
		{"matrix from needs", "    needs: other\n    strategy:\n      matrix:\n        x: ${{ fromJSON(needs.other.outputs.m) }}\n", "needs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "on: push\njobs:\n  other:\n    runs-on: ubuntu-latest\n    outputs:\n      m: '[1]'\n    steps:\n      - run: echo\n  j:\n    runs-on: ubuntu-latest\n" + c.job + "    steps:\n      - run: echo\n"
			wf, err := workflow.Parse("w.yml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = planWorkflow(wf, (&Engine{}).runContexts(runFor("refs/heads/main"), wf, ""))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestWorkflowModes(t *testing.T) {
	for src, want := range map[string]string{
		"on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n":                                                        slipwayfile.ModeParallel,
		"on: push\nconcurrency: g\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n":                                        slipwayfile.ModeQueued,
		"on: push\nconcurrency:\n  group: g\n  cancel-in-progress: false\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n": slipwayfile.ModeQueued,
	} {
		wf, err := workflow.Parse("w.yml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if got := workflowMode(wf); got != want {
			t.Errorf("%q: mode %s, want %s", src, got, want)
		}
	}
}

func TestCommonDirAndLiteralPrefix(t *testing.T) {
	if got := commonDir([]string{"src/a/b", "src/a/c", "src/a"}); got != "src/a" {
		t.Errorf("commonDir %q", got)
	}
	if got := commonDir([]string{"src", "_temp"}); got != "." {
		t.Errorf("commonDir %q", got)
	}
	for in, want := range map[string]string{"src/dist/**/*.js": "src/dist", "*.txt": ".", "src/a.txt": "src/a.txt"} {
		if got := literalPrefix(in); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func runFor(ref string) store.Run {
	return store.Run{ID: 1, App: "app", Ref: ref, Commit: "0123456789abcdef", Trigger: "git-push"}
}
