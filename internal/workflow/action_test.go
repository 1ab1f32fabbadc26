package workflow

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAction(t *testing.T) {
	const good = `name: setup
description: sets things up
inputs:
  greeting:
    description: what to say
    default: hello
  Who:
    required: true
  old:
    deprecationMessage: use who
outputs:
  said:
    description: what was said
    value: ${{ steps.say.outputs.text }}
runs:
  using: composite
  steps:
    - id: say
      run: echo "text=${{ inputs.greeting }}" >> "$GITHUB_OUTPUT"
      shell: bash
      env:
        X: ${{ github.action_path }}
    - uses: ./.github/actions/other
      if: ${{ inputs.who == 'me' }}
      with:
        a: b
    - uses: actions/upload-artifact@v4
      continue-on-error: true
      working-directory: sub
`
	a, err := ParseAction("a/action.yml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "setup" || len(a.Inputs) != 3 || len(a.Outputs) != 1 || len(a.Steps) != 3 {
		t.Fatalf("parsed: %+v", a)
	}
	if in := a.Input("greeting"); in == nil || in.Default != "hello" || in.Required {
		t.Errorf("greeting: %+v", in)
	}
	if in := a.Input("who"); in == nil || !in.Required || in.Name != "Who" {
		t.Errorf("who (any case): %+v", in)
	}
	if in := a.Input("old"); in == nil || in.Deprecation != "use who" {
		t.Errorf("old: %+v", in)
	}
	if a.Outputs[0] != (EnvVar{"said", "${{ steps.say.outputs.text }}"}) {
		t.Errorf("outputs: %+v", a.Outputs)
	}
	s := a.Steps[0]
	if s.ID != "say" || s.Shell != "bash" || !strings.Contains(s.Run, "inputs.greeting") || len(s.Env) != 1 || s.Line != 18 || s.Col != 7 {
		t.Errorf("step 0: %+v", s)
	}
	if s := a.Steps[1]; s.Uses != "./.github/actions/other" || s.If == "" || len(s.With) != 1 {
		t.Errorf("step 1: %+v", s)
	}
	if s := a.Steps[2]; s.ContinueOnError != "true" || s.WorkingDirectory != "sub" {
		t.Errorf("step 2: %+v", s)
	}

	steps := func(body string) string {
		return "runs:\n  using: composite\n  steps:\n" + body
	}
	for _, c := range []struct {
		name, src, want string
		line, col       int
	}{
		{"node", "runs:\n  using: node20\n  main: index.js\n", `runs.using: "node20" is a JavaScript action`, 2, 10},
		{"docker", "runs:\n  using: docker\n  image: Dockerfile\n", "docker actions are not supported", 2, 10},
		{"bad using", "runs:\n  using: compost\n", `"compost" is not an action type`, 2, 10},
		{"no runs", "name: x\n", "runs: is missing", 1, 1},
		{"no using", "runs:\n  steps: []\n", "runs.using is missing", 2, 3},
		{"no steps", "runs:\n  using: composite\n", "needs a list of steps", 2, 3},
		{"empty steps", "runs:\n  using: composite\n  steps: []\n", "needs a list of steps", 3, 10},
		{"run without shell", steps("    - run: echo hi\n"), "needs shell:", 4, 7},
		{"run and uses", steps("    - run: echo\n      shell: bash\n      uses: ./x\n"), "both run: and uses:", 4, 7},
		{"neither", steps("    - name: x\n"), "neither run: nor uses:", 4, 7},
		{"unknown step key", steps("    - run: echo\n      shell: bash\n      timeout-minutes: 3\n"), `"timeout-minutes" is not a key`, 6, 7},
		{"unknown top key", "nam: x\n" + steps("    - uses: ./x\n"), `unknown key "nam"`, 1, 1},
		{"bad expression", steps("    - run: echo ${{ inputs.x == }}\n      shell: bash\n"), "runs.steps[0].run:", 4, 12},
		{"secrets context", steps("    - run: echo ${{ secrets.TOKEN }}\n      shell: bash\n"), "secrets", 4, 12},
		{"bad if", steps("    - uses: ./x\n      if: foo(\n"), "runs.steps[0].if:", 5, 11},
		{"duplicate id", steps("    - {id: a, uses: ./x}\n    - {id: a, uses: ./y}\n"), `"a" is used twice`, 5, 7},
		{"bad id", steps("    - {id: 1a, uses: ./x}\n"), `"1a" must start with a letter`, 4, 12},
		{"output without value", "outputs:\n  o:\n    description: x\n" + steps("    - uses: ./x\n"), "outputs.o needs value:", 3, 5},
		{"bad required", "inputs:\n  i:\n    required: maybe\n" + steps("    - uses: ./x\n"), `"maybe" is neither true nor false`, 3, 15},
		{"not yaml", "runs: [\n", "not valid YAML", 1, 1},
		{"not a mapping", "- a\n", "not a mapping", 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAction("x/action.yml", []byte(c.src))
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("err = %v, want Errors", err)
			}
			e := errs[0]
			if !strings.Contains(e.Msg, c.want) || e.Line != c.line || e.Col != c.col || e.File != "x/action.yml" {
				t.Errorf("got %v, want %d:%d: …%s…", err, c.line, c.col, c.want)
			}
		})
	}

	big := strings.Repeat("#", MaxActionFileSize+1)
	if _, err := ParseAction("x/action.yml", []byte(big)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a file over 1 MiB: %v", err)
	}
}
