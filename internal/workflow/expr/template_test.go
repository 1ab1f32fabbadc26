package expr

import (
	"testing"
)

func TestInterpolate(t *testing.T) {
	env := docEnv()
	for _, tc := range []struct {
		in, want string
	}{
		{"", ""},
		{"plain text", "plain text"},
		// [expr] "About expressions": ${{ <expression> }} inside a value.
		{"Hello ${{ github.event_name }}!", "Hello push!"},
		{"${{ github.event_name }}", "push"},
		{"${{1}}${{ 2 }}", "12"},
		{"a ${{ 1 }} b ${{ 'two' }} c ${{ true }}", "a 1 b two c true"},
		{"${{ matrix.os }}-${{ matrix.node }}", "ubuntu-latest-18"},
		// [contexts] a nonexistent property evaluates to an empty string.
		{"[${{ github.nonexistent }}]", "[]"},
		{"a ${{ null }} b", "a  b"},
		{"${{ github.event }} ${{ fruits }}", "Object Array"},
		{"${{ 0.1 }} ${{ 1e15 }} ${{ -9.2 }}", "0.1 1E+15 -9.2"},
		// [expr] "Literals": '' escapes a quote.
		{"${{ 'It''s open source!' }}", "It's open source!"},
		// `}}` inside a string literal does not end the expression.
		{"${{ format('{{0}}', 1) }}", "{0}"},
		{"${{ format('}}{0}{{', 'x') }}", "}x{"},
		{"${{ 'a }} b' }}", "a }} b"},
		{"${{ 'it''s }}' }}", "it's }}"},
		// A literal ${{ can be produced by an expression.
		{"${{ '${{' }} x }}", "${{ x }}"},
		// Text outside ${{ }} is kept as it is.
		{"cost: $5 {{ not }} an expression }}", "cost: $5 {{ not }} an expression }}"},
		{"${{ 1 }}}", "1}"},
		{"$${{ 1 }}", "$1"},
		{"line1\n${{ github.ref }}\nline3", "line1\nrefs/heads/main\nline3"},
		// [expr] "Operators" ternary-like example.
		{"${{ github.ref == 'refs/heads/main' && 'prod' || 'dev' }}", "prod"},
		{"${{ join(github.event.issue.labels.*.name, ', ') }}", "bug, help wanted"},
		{"${{ hashFiles('go.sum') }}", "hash(go.sum)"},
	} {
		got, err := Interpolate(tc.in, env)
		if err != nil {
			t.Errorf("Interpolate(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Interpolate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestInterpolateErrors(t *testing.T) {
	env := docEnv()
	for _, tc := range []struct {
		in  string
		err string
		col int
	}{
		{"${{ 1 }} and ${{ 2", `unterminated expression: "${{" has no closing "}}"`, 14},
		{"x ${{ 'abc }}", "a string literal in it is not closed", 3},
		{"${{", "unterminated expression", 1},
		{"a ${{ foo }}", `unknown context "foo"`, 7},
		{"${{ }}", "unexpected end of input", 5},
		{"é ${{ foo }}", `unknown context "foo"`, 7},
		{"${{ 1 }} ${{ fromJSON('x') }}", "invalid JSON", 14},
		// Every expression is checked before any is evaluated.
		{"${{ fromJSON('x') }} ${{ nope() }}", `unknown function "nope"`, 26},
		{"${{ github.sha }} ${{ 1 2 }}", "did not reach end of input", 25},
	} {
		_, err := Interpolate(tc.in, env)
		t.Run(tc.in, func(t *testing.T) { assertError(t, err, tc.col, tc.err) })
	}
}

func TestIf(t *testing.T) {
	ok := Status{}
	failed := Status{Failed: true}
	cancelled := Status{Cancelled: true}
	for _, tc := range []struct {
		cond   string
		status Status
		want   bool
	}{
		// [expr] "Status check functions": "A default status check of
		// success() is applied unless you include one of these functions."
		{"", ok, true},
		{"   ", ok, true},
		{"", failed, false},
		{"", cancelled, false},
		{"github.event_name == 'push'", ok, true},
		{"github.event_name == 'push'", failed, false},
		{"github.event_name == 'push'", cancelled, false},
		{"github.event_name == 'pull_request'", ok, false},
		// [expr] "About expressions": in if: the ${{ }} may be omitted.
		{"${{ github.event_name == 'push' }}", ok, true},
		{"  ${{ github.event_name == 'pull_request' }}  ", ok, false},
		{"${{ github.event_name == 'push' }}", failed, false},
		// [expr] success(): "Returns true when all previous steps have
		// succeeded."
		{"success()", ok, true},
		{"success()", failed, false},
		{"${{ success() }}", cancelled, false},
		// always(): "Causes the step to always execute ... even when
		// canceled."
		{"always()", ok, true},
		{"${{ always() }}", failed, true},
		{"always()", cancelled, true},
		// cancelled(): "Returns true if the workflow was canceled."
		{"cancelled()", ok, false},
		{"${{ cancelled() }}", cancelled, true},
		// failure(): "Returns true when any previous step of a job fails."
		{"failure()", ok, false},
		{"${{ failure() }}", failed, true},
		// Example "failure with conditions".
		{"${{ failure() && steps.build.conclusion == 'failure' }}", failed, true},
		{"failure() && steps.build.conclusion == 'success'", failed, false},
		// A status function anywhere in the expression disables the
		// implicit success().
		{"${{ !cancelled() }}", failed, true},
		{"!cancelled()", cancelled, false},
		{"always() && github.event_name == 'push'", failed, true},
		{"contains(format('{0}', failure()), 'true')", failed, true},
		{"Always()", failed, true}, // function names ignore case
		// [expr] "Literals" note: falsy values in conditionals.
		{"0", ok, false},
		{"-0", ok, false},
		{"''", ok, false},
		{"null", ok, false},
		{"'false'", ok, true}, // a non-empty string
		{"github.nonexistent", ok, false},
		{"fromJSON('[]')", ok, true},
		{"${{ false }}", ok, false},
		// GitHub's quirk: text outside the ${{ }} makes the value a string,
		// which is true when not empty.
		{"${{ false }} && true", ok, true},
		{"${{ github.event_name == 'pull_request' }} && ${{ false }}", ok, true},
		{"${{ false }} ", ok, false}, // only surrounding blanks: one expression
		{"${{ '' }}${{ '' }}", ok, false},
		{"${{ false }} && true", failed, false},         // still success() && ...
		{"${{ always() }} x", failed, true},             // ... unless a status function is used
		{"github.ref == '${{ github.sha }}'", ok, true}, // contains ${{: a template, not an expression
		{"${{ cancelled() }} x", cancelled, true},       // a status function anywhere
	} {
		env := docEnv()
		env.Status = tc.status
		got, err := If(tc.cond, env)
		if err != nil {
			t.Errorf("If(%q) with %+v: %v", tc.cond, tc.status, err)
			continue
		}
		if got != tc.want {
			t.Errorf("If(%q) with %+v = %v, want %v", tc.cond, tc.status, got, tc.want)
		}
	}
}

func TestIfErrors(t *testing.T) {
	for _, tc := range []struct {
		cond   string
		status Status
		err    string
		col    int
	}{
		{"foo == 1", Status{}, `unknown context "foo"`, 1},
		{"  ${{ foo == 1 }}", Status{}, `unknown context "foo"`, 7},
		// Unknown contexts are reported even when success() is false.
		{"foo == 1", Status{Failed: true}, `unknown context "foo"`, 1},
		{"${{ 1 +", Status{}, "unterminated expression", 1},
		{"github.sha ==", Status{}, "unexpected end of input", 14},
		{"fromJSON('x')", Status{}, "invalid JSON", 1},
		{"${{ nope() }} && x", Status{}, `unknown function "nope"`, 5},
	} {
		env := docEnv()
		env.Status = tc.status
		_, err := If(tc.cond, env)
		t.Run(tc.cond, func(t *testing.T) { assertError(t, err, tc.col, tc.err) })
	}

	// success() && (cond): cond is not evaluated when success() is false.
	env := docEnv()
	env.Status = Status{Failed: true}
	if got, err := If("fromJSON('x')", env); err != nil || got {
		t.Errorf("If with failed status = %v, %v; want false, nil", got, err)
	}
	// A nil Env: no contexts, success.
	if got, err := If("", nil); err != nil || !got {
		t.Errorf("If(\"\", nil) = %v, %v", got, err)
	}
}
