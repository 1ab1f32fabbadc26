package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const compositeWorkflow = `on: push
env:
  WFVAR: wf-level
jobs:
  ok:
    runs-on: ubuntu-latest
    env:
      JOBVAR: job-level
    steps:
      - uses: actions/checkout@v4
      - id: setup
        uses: ./.github/actions/setup
        with:
          who: world
          bogus: ignored
        env:
          CALLER: from-caller
      - run: echo "caller sees said=${{ steps.setup.outputs.said }} nested=${{ steps.setup.outputs.nested }} after-env=$FROM_ACTION"
  errors:
    runs-on: ubuntu-latest
    steps:
      - uses: ./.github/actions/noshell
        continue-on-error: true
      - uses: ./.github/actions/loop-a
        continue-on-error: true
      - uses: ./.github/actions/needs-who
      - uses: someone/repo/path@v1
        continue-on-error: true
      - uses: ./.github/actions/node
        continue-on-error: true
      - uses: ./.github/actions/d0
        continue-on-error: true
      - uses: ./.github/actions/nothere
`

const setupAction = `name: setup
inputs:
  greeting:
    description: what to say
    default: hello
  who:
    required: true
outputs:
  said:
    value: ${{ steps.say.outputs.text }}
  nested:
    value: ${{ steps.inner.outputs.doubled }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: |
        echo "text=${{ inputs.greeting }}-${{ inputs.who }}" >> "$GITHUB_OUTPUT"
        echo "path=$GITHUB_ACTION_PATH ctx=${{ github.action_path }} caller=$CALLER job=$JOBVAR wf=$WFVAR"
        echo "FROM_ACTION=set-inside" >> "$GITHUB_ENV"
    - shell: bash
      if: ${{ inputs.greeting == 'nope' }}
      run: echo never-runs-in-composite
    - shell: sh
      env:
        STEP_ENV: step-env
      run: echo "step-env=$STEP_ENV env-ctx=${{ env.FROM_ACTION }} said-inside=${{ steps.say.outputs.text }}"
    - id: inner
      uses: ./.github/actions/inner
      with:
        value: ${{ steps.say.outputs.text }}
`

// inner is action.yaml, not action.yml.
const innerAction = `inputs:
  value:
    required: true
outputs:
  doubled:
    value: ${{ steps.d.outputs.v }}
runs:
  using: composite
  steps:
    - shell: bash
      run: mkdir -p out && echo "${{ inputs.value }}" > out/file.txt
    - uses: actions/upload-artifact@v4
      with:
        name: from-composite
        path: out/file.txt
    - id: d
      shell: bash
      run: echo "v=${{ inputs.value }}+${{ inputs.value }}" >> "$GITHUB_OUTPUT"
`

// TestIntegrationWorkflowCompositeActions runs local composite actions:
// inputs with defaults, outputs to the caller, env, if:, github.action_path,
// a nested composite calling a built-in, and the errors a bad action makes.
func TestIntegrationWorkflowCompositeActions(t *testing.T) {
	e := newEnv(t)
	e.createApp("wfc")
	w := newWork(t)
	files := map[string]string{
		".github/workflows/ci.yml":           compositeWorkflow,
		".github/actions/setup/action.yml":   setupAction,
		".github/actions/inner/action.yaml":  innerAction,
		".github/actions/noshell/action.yml": "runs:\n  using: composite\n  steps:\n    - run: echo no shell\n",
		".github/actions/loop-a/action.yml":  "runs:\n  using: composite\n  steps:\n    - uses: ./.github/actions/loop-b\n",
		".github/actions/loop-b/action.yml":  "runs:\n  using: composite\n  steps:\n    - uses: ./.github/actions/loop-a\n",
		".github/actions/node/action.yml":    "runs:\n  using: node20\n  main: index.js\n",
		".github/actions/nothere/README.md":  "no action here\n",
		// A required input not given: empty, with a warning, as on GitHub.
		".github/actions/needs-who/action.yml":      "inputs:\n  who:\n    required: true\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: echo \"who is [${{ inputs.who }}]\"\n",
		".github/actions/setup/unused-but-here.txt": "x\n",
	}
	// d0 → d1 → … → d11: one level deeper than Slipway runs.
	for i := 0; i <= 11; i++ {
		files[fmt.Sprintf(".github/actions/d%d/action.yml", i)] = fmt.Sprintf("runs:\n  using: composite\n  steps:\n    - uses: ./.github/actions/d%d\n", i+1)
	}
	w.commit("composite", files)
	out, err := w.run("push", repoURL(e.URL, e.Admin, "wfc"), "main")
	if err != nil || !strings.Contains(out, "run 1 started") {
		t.Fatalf("push: %v\n%s", err, out)
	}
	run := e.waitRun(1, 180*time.Second)
	logs := e.logText(1)
	acts := actionsOf(run)
	if acts["ok/ok"]["state"] != "succeeded" {
		t.Fatalf("job ok: %v %v\n%s", acts["ok/ok"]["state"], acts["ok/ok"]["reason"], logs)
	}
	for _, want := range []string{
		"path=/slipway/src/.github/actions/setup ctx=/slipway/src/.github/actions/setup caller=from-caller job=job-level wf=wf-level",
		"step-env=step-env env-ctx=set-inside said-inside=hello-world",
		"Step 2.2 skipped",
		"Uploaded artifact from-composite",
		"caller sees said=hello-world nested=hello-world+hello-world after-env=set-inside",
		"##[warning]Unexpected input(s) 'bogus', valid inputs are ['greeting', 'who']",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if strings.Contains(logs, "never-runs-in-composite\n") && !strings.Contains(logs, "echo never-runs-in-composite") {
		t.Errorf("a step whose if: is false ran")
	}
	if acts["errors/errors"]["state"] != "failed" {
		t.Fatalf("job errors: %v %v", acts["errors/errors"]["state"], acts["errors/errors"]["reason"])
	}
	reason := fmt.Sprint(acts["errors/errors"]["reason"])
	if !strings.Contains(reason, "no action.yml or action.yaml at ./.github/actions/nothere; check out the repository first (actions/checkout)") {
		t.Errorf("missing action.yml: reason %q", reason)
	}
	for _, want := range []string{
		".github/actions/noshell/action.yml:4:7: runs.steps[0]: a run step in a composite action needs shell:",
		"uses: ./.github/actions/loop-a calls itself (./.github/actions/loop-a → ./.github/actions/loop-b → ./.github/actions/loop-a)",
		"##[warning]./.github/actions/needs-who: required input(s) who not given (empty, as on GitHub)",
		"who is []",
		"someone/repo/path@v1 is an action in another repository's directory",
		`.github/actions/node/action.yml:2:10: runs.using: "node20" is a JavaScript action`,
		"uses: ./.github/actions/d10: composite actions nest over 10 deep (./.github/actions/d0 → ./.github/actions/d1",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if code, _ := e.call("GET", "/api/v1/runs/1/artifacts/from-composite", e.Admin, nil); code != 200 {
		t.Errorf("the artifact the nested composite uploaded: %d", code)
	}
}
