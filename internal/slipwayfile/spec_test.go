package slipwayfile

import (
	"strings"
	"testing"
)

const validSpec = `on:
  push:
    branches: [main]
mode: queued
stages:
  - name: Build
    actions:
      - name: compile
        type: build
        outputs: [BuildArtifact]
      - name: unit
        type: test
        run-order: 2
        inputs: [BuildArtifact]
  - name: Deploy
    actions:
      - name: staging
        type: deploy
        environment: staging
        service: web
        inputs: [SourceArtifact, BuildArtifact]
        timeout: 10m
`

func TestParseValid(t *testing.T) {
	s, err := Parse([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeQueued || len(s.Stages) != 2 || s.Stages[0].Actions[0].Buildspec != "buildspec.yml" || s.Stages[0].Actions[0].RunOrder != 1 {
		t.Fatalf("parsed %+v", s)
	}
	if s.Stages[1].Actions[0].Timeout.Minutes() != 10 || s.Stages[1].Actions[0].TaskDef != "taskdef.json" {
		t.Fatalf("timeout %v", s.Stages[1].Actions[0].Timeout)
	}
}

func TestParseErrorsCarryPosition(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "file is empty"},
		{"syntax", "on: [\n", "slipway.yaml:"},
		{"unknown top key", "on: {}\nstagez: []\n", "slipway.yaml:2:1: stagez: unknown key \"stagez\""},
		{"unknown action key", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        bildspec: x\n", "slipway.yaml:6:9: stages[0].actions[0].bildspec: unknown key"},
		{"unknown type", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: compile\n", "slipway.yaml:5:15: stages[0].actions[0].type: \"compile\" is not an action type"},
		{"bad mode", "mode: fast\nstages:\n  - name: B\n    actions: [{name: a, type: build}]\n", "slipway.yaml:1:7: mode:"},
		{"no stages", "on: {}\n", "at least one stage"},
		{"duplicate stage", "stages:\n  - name: B\n    actions: [{name: a, type: build}]\n  - name: B\n    actions: [{name: a, type: build}]\n", "slipway.yaml:4:11: stages[1].name: stage name \"B\" is used twice"},
		{"duplicate action", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build}\n      - {name: a, type: test}\n", "stages[0].actions[1].name: action name \"a\" is used twice"},
		{"missing input", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        inputs: [Nope]\n", "slipway.yaml:6:18: stages[0].actions[0].inputs[0]: no earlier action outputs artifact \"Nope\""},
		{"input from same run-order", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [X]}\n      - {name: b, type: build, inputs: [X]}\n", "no earlier action outputs artifact \"X\""},
		{"duplicate output", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [X]}\n  - name: C\n    actions:\n      - {name: b, type: build, outputs: [X]}\n", "artifact \"X\" is already an output"},
		{"bad timeout", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, timeout: soon}\n", "slipway.yaml:4:41: stages[0].actions[0].timeout: \"soon\" is not a positive duration"},
		{"run-order not a number", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        run-order: first\n", "slipway.yaml:6:20: stages[0].actions[0].run-order: must be a whole number, not \"first\""},
		{"env value a list", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        env:\n          GOFLAGS: [-x]\n", "slipway.yaml:7:20: stages[0].actions[0].env.GOFLAGS: must be a single value, not a list"},
		{"name a mapping", "stages:\n  - name: {x: 1}\n    actions: [{name: a, type: build}]\n", "slipway.yaml:2:11: stages[0].name: must be a single value, not a mapping"},
		{"deploy without service", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: staging, inputs: [SourceArtifact]}\n", "needs environment and service"},
		{"deploy strategy", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, strategy: canary, inputs: [SourceArtifact]}\n", "must be rolling or blue-green"},
		{"autoscaling max under min", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: deploy\n        environment: s\n        service: w\n        inputs: [SourceArtifact]\n        autoscaling: {min: 3, max: 2, target-requests-per-second: 50}\n",
			"slipway.yaml:9:22: stages[0].actions[0].autoscaling: autoscaling.max must be min (3) to 100"},
		{"autoscaling without a target", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, inputs: [SourceArtifact], autoscaling: {min: 1, max: 2}}\n",
			"autoscaling.target-requests-per-second: give a target to track: target-requests-per-second (requests each task should serve per second), target-cpu-percent or target-memory-percent"},
		{"autoscaling CPU over 100", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, inputs: [SourceArtifact], autoscaling: {min: 1, max: 2, target-cpu-percent: 120}}\n",
			"autoscaling.target-cpu-percent must be more than 0 and at most 100"},
		{"autoscaling window", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, inputs: [SourceArtifact], autoscaling: {min: 1, max: 2, target-requests-per-second: 5, window: 1h}}\n",
			`autoscaling.window "1h" must be a duration from 5s to 2m0s`},
		{"autoscaling unknown key", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, inputs: [SourceArtifact], autoscaling: {minimum: 1}}\n",
			`stages[0].actions[0].autoscaling.minimum: unknown key`},
		{"autoscaling on a build", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, autoscaling: {min: 1, max: 2, target-requests-per-second: 5}}\n",
			"autoscaling belongs to deploy actions only"},
		{"bad image tag", "stages:\n  - name: B\n    actions:\n      - {name: a, type: image, tags: [\"no good\"]}\n", "is not a valid image tag"},
		{"invoke without target", "stages:\n  - name: B\n    actions:\n      - {name: a, type: invoke}\n", "invoke action needs command or url"},
		{"stages not a list", "stages: {a: 1}\n", "stages: must be a list"},
		{"bad glob", "on:\n  push:\n    branches: [\"!\"]\nstages:\n  - name: B\n    actions: [{name: a, type: build}]\n", "slipway.yaml:3:16: on.push.branches"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestMatchPush(t *testing.T) {
	spec := func(y string) *Spec {
		s, err := Parse([]byte(y + "stages:\n  - name: B\n    actions: [{name: a, type: build}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	branchesOnly := spec("on:\n  push:\n    branches: [main, \"release/**\", \"feat-*\", \"!feat-skip\"]\n")
	tagsOnly := spec("on:\n  push:\n    tags: [\"v*\"]\n")
	everything := spec("on:\n  push: {}\n")
	paths := spec("on:\n  push:\n    branches: [main]\n    paths: [\"src/**\", \"*.go\", \"docs/*.md\"]\n")
	none := spec("on: {}\n")
	cases := []struct {
		name    string
		s       *Spec
		ref     string
		changed []string
		run     bool
	}{
		{"branch match", branchesOnly, "refs/heads/main", nil, true},
		{"branch deep glob", branchesOnly, "refs/heads/release/2026/11", nil, true},
		{"single star stays in segment", branchesOnly, "refs/heads/feat-a/b", nil, false},
		{"single star", branchesOnly, "refs/heads/feat-a", nil, true},
		{"negation", branchesOnly, "refs/heads/feat-skip", nil, false},
		{"other branch", branchesOnly, "refs/heads/dev", nil, false},
		{"tag with branches only", branchesOnly, "refs/tags/v1", nil, false},
		{"tag match", tagsOnly, "refs/tags/v1.2.0", nil, true},
		{"tag no match", tagsOnly, "refs/tags/nightly", nil, false},
		{"branch with tags only", tagsOnly, "refs/heads/main", nil, false},
		{"no filters: branch", everything, "refs/heads/anything", nil, true},
		{"no filters: tag", everything, "refs/tags/x", nil, true},
		{"no on.push", none, "refs/heads/main", nil, false},
		{"notes ref", everything, "refs/notes/x", nil, false},
		{"path deep", paths, "refs/heads/main", []string{"README", "src/a/b.go"}, true},
		{"path root glob", paths, "refs/heads/main", []string{"main.go"}, true},
		{"path star no cross", paths, "refs/heads/main", []string{"docs/a/b.md"}, false},
		{"path none", paths, "refs/heads/main", []string{"README"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.s.MatchPush(c.ref, c.changed)
			if d.Run != c.run {
				t.Fatalf("run=%v (%s), want %v", d.Run, d.Reason, c.run)
			}
			if !d.Run && d.Reason == "" {
				t.Fatal("a filtered push must say why")
			}
		})
	}
}

// TestParseArtifactNames: inputs and outputs follow CodePipeline's rule for
// artifact names, and an error points at the name.
func TestParseArtifactNames(t *testing.T) {
	long := strings.Repeat("a", 101)
	cases := []struct {
		name, yaml, want string
	}{
		{"output with a space", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        outputs: [\"my output\"]\n",
			`slipway.yaml:6:19: stages[0].actions[0].outputs[0]: artifact name "my output" is not valid; use letters, digits, _ and -, at most 100 characters`},
		{"output a path", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        outputs:\n          - ok\n          - ../../etc\n",
			`slipway.yaml:8:13: stages[0].actions[0].outputs[1]: artifact name "../../etc" is not valid`},
		{"output with a dot", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [build.out]}\n",
			`stages[0].actions[0].outputs[0]: artifact name "build.out" is not valid`},
		{"output too long", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [" + long + "]}\n",
			`stages[0].actions[0].outputs[0]: artifact name "` + long + `" is not valid`},
		{"output empty", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [\"\"]}\n",
			`stages[0].actions[0].outputs[0]: artifact name is empty`},
		{"input a path", "stages:\n  - name: B\n    actions:\n      - name: a\n        type: build\n        inputs: [SourceArtifact, ../x]\n",
			`slipway.yaml:6:34: stages[0].actions[0].inputs[1]: artifact name "../x" is not valid; use letters, digits, _ and -`},
		{"input non-ASCII", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, inputs: [Artéfact]}\n",
			`stages[0].actions[0].inputs[0]: artifact name "Artéfact" is not valid`},
		{"deploy input", "stages:\n  - name: B\n    actions:\n      - {name: a, type: deploy, environment: s, service: w, inputs: [\"a b\"]}\n",
			`stages[0].actions[0].inputs[0]: artifact name "a b" is not valid`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v does not contain %q", err, c.want)
			}
		})
	}
	ok := "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, inputs: [SourceArtifact], outputs: [build_out-1, " + strings.Repeat("b", 100) + "]}\n" +
		"      - {name: c, type: test, run-order: 2, inputs: [build_out-1, " + strings.Repeat("b", 100) + "]}\n"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("valid names: %v", err)
	}
}
