package workflow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// at returns the 1-based line and column of the first occurrence of needle in src.
func at(t *testing.T, src, needle string) (int, int) {
	t.Helper()
	i := strings.Index(src, needle)
	if i < 0 {
		t.Fatalf("%q not in source", needle)
	}
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return line, col
}

func step(t *testing.T, src, firstKey string, s Step) *Step {
	t.Helper()
	s.Line, s.Col = at(t, src, firstKey)
	return &s
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func mustParse(t *testing.T, file, src string) *Workflow {
	t.Helper()
	w, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return w
}

const ecsWorkflow = `name: Deploy to Amazon ECS

on:
  push:
    tags:
      - 'v*'

env:
  AWS_REGION: eu-west-1
  ECR_REPOSITORY: slipway-demo
  ECS_SERVICE: slipway-demo-service
  ECS_CLUSTER: slipway-demo-cluster
  ECS_TASK_DEFINITION: .aws/task-definition.json
  CONTAINER_NAME: app

permissions:
  contents: read

jobs:
  deploy:
    name: Deploy
    runs-on: ubuntu-latest
    environment: production

    steps:
      - name: Checkout
        uses: actions/checkout@v4

      - name: Configure AWS credentials
        uses: aws-actions/configure-aws-credentials@v4
        with:
          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}
          aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
          aws-region: ${{ env.AWS_REGION }}

      - name: Login to Amazon ECR
        id: login-ecr
        uses: aws-actions/amazon-ecr-login@v2

      - name: Build, tag, and push image to Amazon ECR
        id: build-image
        env:
          ECR_REGISTRY: ${{ steps.login-ecr.outputs.registry }}
          IMAGE_TAG: ${{ github.sha }}
        run: |
          docker build -t $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG .
          docker push $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG
          echo "##[set-output name=image;]$ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG"

      - name: Fill in the new image ID in the Amazon ECS task definition
        id: task-def
        uses: aws-actions/amazon-ecs-render-task-definition@v1
        with:
          task-definition: ${{ env.ECS_TASK_DEFINITION }}
          container-name: ${{ env.CONTAINER_NAME }}
          image: ${{ steps.build-image.outputs.image }}

      - name: Deploy Amazon ECS task definition
        uses: aws-actions/amazon-ecs-deploy-task-definition@v1
        with:
          task-definition: ${{ steps.task-def.outputs.task-definition }}
          service: ${{ env.ECS_SERVICE }}
          cluster: ${{ env.ECS_CLUSTER }}
          wait-for-service-stability: true
`

func TestParseECS(t *testing.T) {
	src := ecsWorkflow
	const file = ".github/workflows/aws.yml"
	got := mustParse(t, file, src)

	want := &Workflow{
		File: file,
		Name: "Deploy to Amazon ECS",
		Push: &PushFilter{Tags: []string{"v*"}},
		Env: Env{
			{"AWS_REGION", "eu-west-1"},
			{"ECR_REPOSITORY", "slipway-demo"},
			{"ECS_SERVICE", "slipway-demo-service"},
			{"ECS_CLUSTER", "slipway-demo-cluster"},
			{"ECS_TASK_DEFINITION", ".aws/task-definition.json"},
			{"CONTAINER_NAME", "app"},
		},
		Jobs: []*Job{{
			ID: "deploy", Name: "Deploy", Line: 20, Col: 3,
			RunsOn:      []string{"ubuntu-latest"},
			Environment: &JobEnvironment{Name: "production"},
			Steps: []*Step{
				step(t, src, "name: Checkout", Step{Name: "Checkout", Uses: "actions/checkout@v4"}),
				step(t, src, "name: Configure AWS", Step{
					Name: "Configure AWS credentials",
					Uses: "aws-actions/configure-aws-credentials@v4",
					With: []EnvVar{
						{"aws-access-key-id", "${{ secrets.AWS_ACCESS_KEY_ID }}"},
						{"aws-secret-access-key", "${{ secrets.AWS_SECRET_ACCESS_KEY }}"},
						{"aws-region", "${{ env.AWS_REGION }}"},
					},
				}),
				step(t, src, "name: Login", Step{ID: "login-ecr", Name: "Login to Amazon ECR", Uses: "aws-actions/amazon-ecr-login@v2"}),
				step(t, src, "name: Build", Step{
					ID:   "build-image",
					Name: "Build, tag, and push image to Amazon ECR",
					Env: Env{
						{"ECR_REGISTRY", "${{ steps.login-ecr.outputs.registry }}"},
						{"IMAGE_TAG", "${{ github.sha }}"},
					},
					Run: "docker build -t $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG .\n" +
						"docker push $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG\n" +
						"echo \"##[set-output name=image;]$ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG\"\n",
				}),
				step(t, src, "name: Fill in", Step{
					ID:   "task-def",
					Name: "Fill in the new image ID in the Amazon ECS task definition",
					Uses: "aws-actions/amazon-ecs-render-task-definition@v1",
					With: []EnvVar{
						{"task-definition", "${{ env.ECS_TASK_DEFINITION }}"},
						{"container-name", "${{ env.CONTAINER_NAME }}"},
						{"image", "${{ steps.build-image.outputs.image }}"},
					},
				}),
				step(t, src, "name: Deploy Amazon", Step{
					Name: "Deploy Amazon ECS task definition",
					Uses: "aws-actions/amazon-ecs-deploy-task-definition@v1",
					With: []EnvVar{
						{"task-definition", "${{ steps.task-def.outputs.task-definition }}"},
						{"service", "${{ env.ECS_SERVICE }}"},
						{"cluster", "${{ env.ECS_CLUSTER }}"},
						{"wait-for-service-stability", "true"},
					},
				}),
			},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
	}

	for _, tc := range []struct {
		ref string
		run bool
	}{{"refs/tags/v1.2.0", true}, {"refs/tags/release-1", false}, {"refs/heads/main", false}} {
		if run, reason := got.MatchPush(tc.ref, []string{"app.go"}); run != tc.run {
			t.Errorf("MatchPush(%q) = %v (%s), want %v", tc.ref, run, reason, tc.run)
		}
	}
}

const ciWorkflow = `name: CI
on:
  push:
    branches: [main, 'release/**']
    paths-ignore: ['docs/**', '**.md']
  workflow_dispatch:
    inputs:
      level:
        description: Log level
        required: true
        default: warning
        type: choice
        options: [info, warning, debug]
      dry-run:
        type: boolean
        default: false
      note:
        description: Free text
env:
  GO_VERSION: 1.26
  CGO_ENABLED: 0
  VERBOSE: true
defaults:
  run:
    shell: bash
    working-directory: src
concurrency:
  group: ci-${{ github.ref }}
  cancel-in-progress: true
jobs:
  test:
    name: Test (${{ matrix.os }}, go ${{ matrix.go }})
    runs-on: ${{ matrix.os }}
    timeout-minutes: 30
    strategy:
      fail-fast: false
      max-parallel: 4
      matrix:
        os: [ubuntu-latest, ubuntu-22.04]
        go: ['1.25', '1.26']
        include:
          - os: ubuntu-latest
            go: '1.26'
            coverage: true
        exclude:
          - os: ubuntu-22.04
            go: '1.25'
    outputs:
      version: ${{ steps.version.outputs.version }}
    steps:
      - uses: actions/checkout@v4
      - id: version
        run: echo "version=$(git describe --tags)" >> "$GITHUB_OUTPUT"
      - name: Test
        run: go test ./...
        env:
          LEVEL: ${{ inputs.level }}
        timeout-minutes: 10
        continue-on-error: ${{ matrix.go == '1.25' }}
  deploy:
    needs: test
    if: github.ref == 'refs/heads/main' && !inputs.dry-run
    runs-on: [self-hosted, slipway]
    environment:
      name: staging
      url: https://staging.example.com
    concurrency: deploy-staging
    defaults:
      run:
        working-directory: deploy
    steps:
      - run: ./deploy.sh ${{ needs.test.outputs.version }}
        shell: sh
        working-directory: scripts
`

func TestParseTwoJobs(t *testing.T) {
	src := ciWorkflow
	const file = ".github/workflows/ci.yml"
	got := mustParse(t, file, src)

	testLine, testCol := at(t, src, "test:\n")
	deployLine, deployCol := at(t, src, "deploy:\n")
	want := &Workflow{
		File: file,
		Name: "CI",
		Push: &PushFilter{Branches: []string{"main", "release/**"}, PathsIgnore: []string{"docs/**", "**.md"}},
		Dispatch: &Dispatch{Inputs: []Input{
			{Name: "level", Description: "Log level", Type: "choice", Default: "warning", Required: true, Options: []string{"info", "warning", "debug"}},
			{Name: "dry-run", Type: "boolean", Default: "false"},
			{Name: "note", Description: "Free text", Type: "string"},
		}},
		Env:         Env{{"GO_VERSION", "1.26"}, {"CGO_ENABLED", "0"}, {"VERBOSE", "true"}},
		Defaults:    Defaults{Shell: "bash", WorkingDirectory: "src"},
		Concurrency: &Concurrency{Group: "ci-${{ github.ref }}", CancelInProgress: "true"},
		Jobs: []*Job{
			{
				ID: "test", Name: "Test (${{ matrix.os }}, go ${{ matrix.go }})", Line: testLine, Col: testCol,
				RunsOn:         []string{"${{ matrix.os }}"},
				TimeoutMinutes: "30",
				Strategy: &Strategy{
					Matrix: map[string]any{
						"os":      []any{"ubuntu-latest", "ubuntu-22.04"},
						"go":      []any{"1.25", "1.26"},
						"include": []any{map[string]any{"os": "ubuntu-latest", "go": "1.26", "coverage": true}},
						"exclude": []any{map[string]any{"os": "ubuntu-22.04", "go": "1.25"}},
					},
					FailFast:    "false",
					MaxParallel: "4",
					keys:        []string{"os", "go"},
				},
				Outputs: []EnvVar{{"version", "${{ steps.version.outputs.version }}"}},
				Steps: []*Step{
					step(t, src, "uses: actions/checkout", Step{Uses: "actions/checkout@v4"}),
					step(t, src, "id: version", Step{ID: "version", Run: `echo "version=$(git describe --tags)" >> "$GITHUB_OUTPUT"`}),
					step(t, src, "name: Test\n", Step{
						Name: "Test", Run: "go test ./...",
						Env:            Env{{"LEVEL", "${{ inputs.level }}"}},
						TimeoutMinutes: "10", ContinueOnError: "${{ matrix.go == '1.25' }}",
					}),
				},
			},
			{
				ID: "deploy", Name: "deploy", Line: deployLine, Col: deployCol,
				Needs:       []string{"test"},
				If:          "github.ref == 'refs/heads/main' && !inputs.dry-run",
				RunsOn:      []string{"self-hosted", "slipway"},
				Environment: &JobEnvironment{Name: "staging", URL: "https://staging.example.com"},
				Concurrency: &Concurrency{Group: "deploy-staging"},
				Defaults:    Defaults{WorkingDirectory: "deploy"},
				Steps: []*Step{
					step(t, src, "run: ./deploy.sh", Step{Run: "./deploy.sh ${{ needs.test.outputs.version }}", Shell: "sh", WorkingDirectory: "scripts"}),
				},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
	if got.Jobs[0].Strategy.MatrixKeys()[0] != "os" {
		t.Errorf("MatrixKeys = %v", got.Jobs[0].Strategy.MatrixKeys())
	}

	combos, err := ExpandMatrix(got.Jobs[0].Strategy.Matrix.(map[string]any), got.Jobs[0].Strategy.MatrixKeys())
	if err != nil {
		t.Fatal(err)
	}
	wantCombos := []map[string]any{
		{"os": "ubuntu-latest", "go": "1.25"},
		{"os": "ubuntu-latest", "go": "1.26", "coverage": true},
		{"os": "ubuntu-22.04", "go": "1.26"},
	}
	if !reflect.DeepEqual(combos, wantCombos) {
		t.Errorf("ExpandMatrix = %v, want %v", combos, wantCombos)
	}

	if order := got.Order(); order[0].ID != "test" || order[1].ID != "deploy" {
		t.Errorf("Order = %s, %s", order[0].ID, order[1].ID)
	}
}

func TestParseDetails(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, w *Workflow)
	}{
		{
			name: "neither push nor workflow_dispatch",
			src:  "on: [pull_request, release]\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - run: make\n",
			check: func(t *testing.T, w *Workflow) {
				if w.Push != nil || w.Dispatch != nil {
					t.Errorf("Push = %v, Dispatch = %v, want both nil", w.Push, w.Dispatch)
				}
				if w.Name != ".github/workflows/x.yml" {
					t.Errorf("Name = %q, want the file path", w.Name)
				}
				if run, reason := w.MatchPush("refs/heads/main", nil); run || !strings.Contains(reason, "on.push") {
					t.Errorf("MatchPush = %v, %q", run, reason)
				}
			},
		},
		{
			name: "event names without configuration",
			src:  "on: [push, workflow_dispatch]\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n",
			check: func(t *testing.T, w *Workflow) {
				if !reflect.DeepEqual(w.Push, &PushFilter{}) || !reflect.DeepEqual(w.Dispatch, &Dispatch{}) {
					t.Errorf("Push = %+v, Dispatch = %+v", w.Push, w.Dispatch)
				}
			},
		},
		{
			name: "single event, runs-on mapping, matrix expression, needs list",
			src: `on: workflow_dispatch
jobs:
  plan:
    runs-on: {labels: [self-hosted, linux]}
    outputs:
      matrix: ${{ steps.p.outputs.matrix }}
    steps:
      - id: p
        run: echo 'matrix={"n":[1,2]}' >> "$GITHUB_OUTPUT"
  run:
    needs: [plan]
    runs-on: ubuntu-24.04
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}
    steps:
      - run: echo ${{ matrix.n }}
`,
			check: func(t *testing.T, w *Workflow) {
				if w.Push != nil || w.Dispatch == nil {
					t.Errorf("Push = %v, Dispatch = %v", w.Push, w.Dispatch)
				}
				if !reflect.DeepEqual(w.Jobs[0].RunsOn, []string{"self-hosted", "linux"}) {
					t.Errorf("RunsOn = %q", w.Jobs[0].RunsOn)
				}
				s := w.Jobs[1].Strategy
				if s.Matrix != "${{ fromJSON(needs.plan.outputs.matrix) }}" || s.MatrixKeys() != nil {
					t.Errorf("Matrix = %#v, keys %v", s.Matrix, s.MatrixKeys())
				}
			},
		},
		{
			name: "matrix values keep their YAML types, anchors are followed",
			src: `on: push
env:
  A: &a 010
  B: *a
  EMPTY:
  QUOTED: "1.0"
jobs:
  a:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        n: [1, 2.5, "3", true, null, {k: [x]}]
        Include: [{n: 1, extra: y}]
    steps:
      - run: echo ${{ matrix.n }} ${{ matrix.extra }}
`,
			check: func(t *testing.T, w *Workflow) {
				wantEnv := Env{{"A", "010"}, {"B", "010"}, {"EMPTY", ""}, {"QUOTED", "1.0"}}
				if !reflect.DeepEqual(w.Env, wantEnv) {
					t.Errorf("Env = %q, want %q", w.Env, wantEnv)
				}
				want := map[string]any{
					"n":       []any{1, 2.5, "3", true, nil, map[string]any{"k": []any{"x"}}},
					"include": []any{map[string]any{"n": 1, "extra": "y"}},
				}
				if got := w.Jobs[0].Strategy.Matrix; !reflect.DeepEqual(got, want) {
					t.Errorf("Matrix = %#v, want %#v", got, want)
				}
			},
		},
		{
			name: "runner labels Slipway accepts do not conflict",
			src:  "on: push\njobs:\n  a:\n    runs-on: [self-hosted, slipway, linux, x64, ubuntu-latest, ubuntu-22.04]\n    steps:\n      - run: make\n",
			check: func(t *testing.T, w *Workflow) {
				if len(w.Jobs[0].RunsOn) != 6 {
					t.Errorf("RunsOn = %q", w.Jobs[0].RunsOn)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParse(t, ".github/workflows/x.yml", tc.src))
		})
	}
}

func TestParseErrors(t *testing.T) {
	type want struct {
		line, col int
		msg       string // a part of the message
	}
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{
			name: "unknown key",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    step:
      - run: make
`,
			want: []want{
				{3, 3, `"steps" section is missing in job "build"`},
				{5, 5, `unexpected key "step" for "job" section. expected one of`},
			},
		},
		{
			name: "expression that does not parse",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.sha ) }}
`,
			want: []want{{6, 34, `parser did not reach end of input after parsing the expression`}},
		},
		{
			name: "unknown context",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ foo.bar }}
`,
			want: []want{{6, 23, `undefined variable "foo"`}},
		},
		{
			name: "needs cycle",
			src: `on: push
jobs:
  a:
    needs: b
    runs-on: ubuntu-latest
    steps:
      - run: make
  b:
    needs: [a]
    runs-on: ubuntu-latest
    steps:
      - run: make
`,
			want: []want{{3, 3, `cyclic dependencies in "needs" job configurations are detected. detected cycle is "a" -> "b" -> "a"`}},
		},
		{
			name: "unknown needed job",
			src: `on: push
jobs:
  a:
    needs: nope
    runs-on: ubuntu-latest
    steps:
      - run: make
`,
			want: []want{{3, 3, `job "a" needs job "nope" which does not exist in this workflow`}},
		},
		{
			name: "job container",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    container: node:22
    steps:
      - run: npm test
`,
			want: []want{{5, 5, `job containers (jobs.build.container) are not supported by Slipway yet`}},
		},
		{
			name: "services and reusable workflows, sorted with actionlint's findings",
			src: `on: push
jobs:
  call:
    uses: octo-org/ci/.github/workflows/go.yml@v1
  build:
    runs-on: ubuntu-latest
    services:
      db:
        image: postgres:17
    steps:
      - run: echo ${{ nope }}
`,
			want: []want{
				{4, 5, `reusable workflow calls (jobs.call.uses) are not supported by Slipway yet`},
				{7, 5, `service containers (jobs.build.services) are not supported by Slipway yet`},
				{11, 23, `undefined variable "nope"`},
			},
		},
		{
			name: "runner label typo",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-lates
    steps:
      - run: make
`,
			want: []want{{4, 14, `label "ubuntu-lates" is unknown. Slipway runs jobs on the labels "ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04", "linux", "x64", "self-hosted" and "slipway"`}},
		},
		{
			name: "bad input of a popular action",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch_depth: 0
`,
			want: []want{{8, 11, `input "fetch_depth" is not defined in action "actions/checkout@v4"`}},
		},
		{
			name: "bad glob",
			src: `on:
  push:
    branches: ['v[1-]']
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: make
`,
			want: []want{{3, 21, `invalid glob pattern. unexpected character ']'`}},
		},
		{
			name: "whole env as an expression",
			src: `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    env: ${{ fromJSON('{"A":"1"}') }}
    steps:
      - run: make
`,
			want: []want{{5, 5, `an expression for a whole env: section (jobs.build.env) is not supported by Slipway yet`}},
		},
		{
			name: "not YAML",
			src:  "on: push\njobs: [\n",
			want: []want{{2, 1, `could not parse as YAML`}},
		},
		{
			name: "empty",
			src:  "",
			want: []want{{1, 1, `workflow is empty`}},
		},
		{
			name: "too large",
			src:  "on: push\n#" + strings.Repeat("x", MaxFileSize),
			want: []want{{1, 1, `Slipway reads workflow files of at most 1048576 bytes`}},
		},
		{
			name: "billion laughs",
			src: `on: push
x1: &a1 [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]
x2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
x3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
x4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
x5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
x6: [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
`,
			want: []want{{1, 1, `more than 1048576 YAML nodes`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const file = ".github/workflows/bad.yml"
			w, err := Parse(file, []byte(tc.src))
			if w != nil {
				t.Errorf("Parse returned a workflow with error %v", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error = %#v, want Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, e := range errs {
				wt := tc.want[i]
				if e.File != file || e.Line != wt.line || e.Col != wt.col || !strings.Contains(e.Msg, wt.msg) {
					t.Errorf("error %d = %v\nwant %s:%d:%d: ...%s...", i, e, file, wt.line, wt.col, wt.msg)
				}
			}
			if s := err.Error(); strings.Count(s, "\n") != len(errs)-1 || !strings.HasPrefix(s, errs[0].Error()) {
				t.Errorf("Errors.Error() = %q", s)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{File: ".github/workflows/a.yml", Line: 3, Col: 7, Msg: "bad"}
	if got := e.Error(); got != ".github/workflows/a.yml:3:7: bad" {
		t.Errorf("Error() = %q", got)
	}
	errs := Errors{e, {File: "b.yml", Line: 1, Col: 1, Msg: "worse"}}
	if got := errs.Error(); got != ".github/workflows/a.yml:3:7: bad\nb.yml:1:1: worse" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

// TestNoProgramsNoFiles runs Parse inside a repository whose files would change
// the result if actionlint read them, with shellcheck and pyflakes on $PATH that
// leave a mark when started.
func TestNoProgramsNoFiles(t *testing.T) {
	repo := t.TempDir()
	bin := t.TempDir()
	marker := filepath.Join(t.TempDir(), "started")
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, prog := range []string{"shellcheck", "pyflakes"} {
		write(filepath.Join(bin, prog), "#!/bin/sh\necho "+prog+" >> '"+marker+"'\nexit 1\n", 0o755)
	}
	src := `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: ./local-action
      - run: echo $UNQUOTED ${{ vars.UNDECLARED }}
      - run: import os; print(undefined_name)
        shell: python
`
	write(filepath.Join(repo, ".git", "HEAD"), "ref: refs/heads/main\n", 0o644)
	write(filepath.Join(repo, ".github", "workflows", "ci.yml"), src, 0o644)
	// Read, this configuration would make vars.UNDECLARED an error.
	write(filepath.Join(repo, ".github", "actionlint.yaml"), "config-variables: []\n", 0o644)
	// Read, this action would make the missing input an error.
	write(filepath.Join(repo, "local-action", "action.yml"),
		"name: local\ndescription: d\ninputs:\n  must:\n    description: d\n    required: true\nruns:\n  using: node20\n  main: index.js\n", 0o644)

	t.Chdir(repo)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if _, err := Parse(".github/workflows/ci.yml", []byte(src)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("external programs ran: %s", b)
	}
}

func TestParseConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			src := ciWorkflow
			if i%2 == 1 {
				src = ecsWorkflow
			}
			if _, err := Parse(".github/workflows/x.yml", []byte(src)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestIsWorkflowFile(t *testing.T) {
	for path, want := range map[string]bool{
		".github/workflows/ci.yml":          true,
		".github/workflows/deploy.yaml":     true,
		".github/workflows/a.b.yml":         true,
		".github/workflows/sub/ci.yml":      false,
		".github/workflows/ci.json":         false,
		".github/workflows/.yml":            false,
		".github/workflows/":                false,
		".github/workflows":                 false,
		".github/ci.yml":                    false,
		"ci.yml":                            false,
		"/.github/workflows/ci.yml":         false,
		"x/.github/workflows/ci.yml":        false,
		".github/workflows/ci.yml.orig":     false,
		".github/workflows/README.md":       false,
		".github/workflowsx/ci.yml":         false,
		".github/workflows/ci.YML":          false,
		".github/workflows/deploy-prod.yml": true,
	} {
		if got := IsWorkflowFile(path); got != want {
			t.Errorf("IsWorkflowFile(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestOrder(t *testing.T) {
	jobs := func(spec ...string) *Workflow { // "id:need,need"
		w := &Workflow{}
		for _, s := range spec {
			id, needs, _ := strings.Cut(s, ":")
			j := &Job{ID: id}
			if needs != "" {
				j.Needs = strings.Split(needs, ",")
			}
			w.Jobs = append(w.Jobs, j)
		}
		return w
	}
	tests := []struct {
		w    *Workflow
		want string
	}{
		{jobs(), ""},
		{jobs("a", "b", "c"), "a b c"},
		{jobs("deploy:test", "test:build", "build"), "build test deploy"},
		{jobs("d:b,c", "c:a", "b:a", "a"), "a c b d"},
		{jobs("x", "late:Early", "Early"), "x Early late"}, // needs ignore case
		{jobs("a:b", "b:a", "c"), "c a b"},                 // a cycle keeps file order at the end
		{jobs("a:missing", "b"), "a b"},
	}
	for _, tc := range tests {
		var ids []string
		for _, j := range tc.w.Order() {
			ids = append(ids, j.ID)
		}
		if got := strings.Join(ids, " "); got != tc.want {
			t.Errorf("Order = %q, want %q", got, tc.want)
		}
	}
}

func TestExpandMatrix(t *testing.T) {
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	l := func(v ...any) []any { return v }
	seq := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	tests := []struct {
		name   string
		matrix map[string]any
		keys   []string
		want   []map[string]any
		err    string
	}{
		{
			name:   "empty",
			matrix: m(),
			want:   []map[string]any{{}},
		},
		{
			name:   "one key",
			matrix: m("node", l(20, 22)),
			keys:   []string{"node"},
			want:   []map[string]any{{"node": 20}, {"node": 22}},
		},
		{
			// docs "Running variations of jobs in a workflow": Example: Expanding or adding matrix configurations.
			name: "fruit and animal include example",
			matrix: m(
				"fruit", l("apple", "pear"),
				"animal", l("cat", "dog"),
				"include", l(
					m("color", "green"),
					m("color", "pink", "animal", "cat"),
					m("fruit", "apple", "shape", "circle"),
					m("fruit", "banana"),
					m("fruit", "banana", "animal", "cat"),
				),
			),
			keys: []string{"fruit", "animal"},
			want: []map[string]any{
				{"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
				{"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
				{"fruit": "pear", "animal": "cat", "color": "pink"},
				{"fruit": "pear", "animal": "dog", "color": "green"},
				{"fruit": "banana"},
				{"fruit": "banana", "animal": "cat"},
			},
		},
		{
			// docs: Example: Excluding matrix configurations — 12 combinations, 3 excluded.
			name: "exclude example",
			matrix: m(
				"os", l("macos-latest", "windows-latest"),
				"version", l(12, 14, 16),
				"environment", l("staging", "production"),
				"exclude", l(
					m("os", "macos-latest", "version", 12, "environment", "production"),
					m("os", "windows-latest", "version", 16),
				),
			),
			keys: []string{"os", "version", "environment"},
			want: []map[string]any{
				{"os": "macos-latest", "version": 12, "environment": "staging"},
				{"os": "macos-latest", "version": 14, "environment": "staging"},
				{"os": "macos-latest", "version": 14, "environment": "production"},
				{"os": "macos-latest", "version": 16, "environment": "staging"},
				{"os": "macos-latest", "version": 16, "environment": "production"},
				{"os": "windows-latest", "version": 12, "environment": "staging"},
				{"os": "windows-latest", "version": 12, "environment": "production"},
				{"os": "windows-latest", "version": 14, "environment": "staging"},
				{"os": "windows-latest", "version": 14, "environment": "production"},
			},
		},
		{
			// docs: Example: Adding configurations — an include that matches no
			// combination becomes one; one that matches is added to it.
			name: "include adds to and beside combinations",
			matrix: m(
				"os", l("windows-latest", "ubuntu-latest"),
				"node", l(14, 16),
				"include", l(
					m("os", "windows-latest", "node", 16, "npm", 6),
					m("os", "macos-latest", "node", 18),
				),
			),
			keys: []string{"os", "node"},
			want: []map[string]any{
				{"os": "windows-latest", "node": 14},
				{"os": "windows-latest", "node": 16, "npm": 6},
				{"os": "ubuntu-latest", "node": 14},
				{"os": "ubuntu-latest", "node": 16},
				{"os": "macos-latest", "node": 18},
			},
		},
		{
			name: "include restores an excluded combination",
			matrix: m(
				"os", l("a", "b"),
				"exclude", l(m("os", "b")),
				"include", l(m("os", "b")),
			),
			keys: []string{"os"},
			want: []map[string]any{{"os": "a"}, {"os": "b"}},
		},
		{
			name:   "only include: one combination per entry",
			matrix: m("include", l(m("site", "a", "n", 1), m("site", "b"))),
			want:   []map[string]any{{"site": "a", "n": 1}, {"site": "b"}},
		},
		{
			name:   "numbers compare by value; objects deeply",
			matrix: m("v", l(1, m("x", l("y"))), "exclude", l(m("v", 1.0), m("v", m("x", l("y"))))),
			keys:   []string{"v"},
			err:    "exclude removes every one",
		},
		{
			name:   "key order: keys first, then the rest sorted",
			matrix: m("b", l(1, 2), "a", l("x"), "c", l(true)),
			keys:   []string{"c", "missing"},
			want: []map[string]any{
				{"c": true, "a": "x", "b": 1},
				{"c": true, "a": "x", "b": 2},
			},
		},
		{
			name:   "256 combinations is the limit",
			matrix: m("a", seq(16), "b", seq(16)),
			keys:   []string{"a", "b"},
		},
		{
			name:   "257 combinations is too many",
			matrix: m("a", seq(16), "b", seq(16), "include", l(m("a", 99))),
			keys:   []string{"a", "b"},
			err:    "more than 256 combinations",
		},
		{
			name:   "a large product cut down by exclude",
			matrix: m("a", seq(20), "b", seq(20), "exclude", l(m("b", 0), m("b", 1), m("b", 2), m("b", 3), m("b", 4), m("b", 5), m("b", 6), m("b", 7), m("b", 8), m("b", 9), m("b", 10), m("b", 11), m("b", 12), m("b", 13), m("b", 14), m("b", 15), m("b", 16), m("b", 17))),
			keys:   []string{"a", "b"},
		},
		{
			name:   "a huge product",
			matrix: m("a", seq(300), "b", seq(300)),
			err:    "more than 65536 combinations before exclude",
		},
		{
			name:   "empty row",
			matrix: m("os", l()),
			err:    `matrix key "os" has no values`,
		},
		{
			name:   "row that is not an array",
			matrix: m("os", "${{ fromJSON(x) }}"),
			err:    `matrix key "os" must be an array`,
		},
		{
			name:   "include that is not a list of objects",
			matrix: m("include", l("x")),
			err:    `matrix include[0] must be an object`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandMatrix(tc.matrix, tc.keys)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(got) > MaxMatrixCombinations {
					t.Errorf("%d combinations", len(got))
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}
