package expr

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// Sections cited below are from GitHub's documentation:
//
//	[expr]     "Evaluate expressions in workflows and actions",
//	           https://docs.github.com/en/actions/reference/evaluate-expressions-in-workflows-and-actions
//	[contexts] "Contexts reference",
//	           https://docs.github.com/en/actions/reference/contexts-reference
//
// Cases marked [runner] are not spelled out in the documentation; they follow
// GitHub's runner (actions/runner, Expressions2 SDK). Cases marked [ours] test
// this package's own choices.

// docEnv builds contexts holding the data the documentation's examples use.
func docEnv() *Env {
	return &Env{
		Contexts: map[string]any{
			"github": map[string]any{
				"event_name": "push",
				"ref":        "refs/heads/main",
				"sha":        "ffac537e6cbbf934b08745a378932722df287a53",
				"event": map[string]any{
					"issue": map[string]any{
						"labels": []any{
							map[string]any{"name": "bug"},
							map[string]any{"name": "help wanted"},
						},
					},
				},
			},
			// A map[string]string, as a caller might pass it.
			"env": map[string]string{"continue": "true", "time": "3", "MY_VAR": "hello"},
			"job": map[string]any{"status": "success"},
			"steps": map[string]any{
				"build": map[string]any{
					"outputs":    map[string]any{"Version": "1.2.3"},
					"outcome":    "failure",
					"conclusion": "failure",
				},
			},
			"needs": map[string]any{
				"job1": map[string]any{
					"result": "success",
					"outputs": map[string]any{
						"matrix": `{"include":[{"project":"foo","config":"Debug"},{"project":"bar","config":"Release"}]}`,
					},
				},
			},
			"matrix": map[string]any{"os": "ubuntu-latest", "node": 18}, // an int, as a caller might pass it
			"runner": map[string]any{"os": "Linux"},
			"inputs": map[string]any{"count": 3.0, "flag": true},
			// [expr] "Object filters" example data.
			"fruits": []any{
				map[string]any{"name": "apple", "quantity": 1.0},
				map[string]any{"name": "orange", "quantity": 2.0},
				map[string]any{"name": "pear"},
			},
			"vegetables": map[string]any{
				"scallions":  map[string]any{"colors": []any{"green", "white", "red"}, "ediblePortions": []any{"roots", "stalks"}},
				"beets":      map[string]any{"colors": []any{"purple", "red", "gold", "white", "pink"}, "ediblePortions": []any{"roots", "stems", "leaves"}},
				"artichokes": map[string]any{"colors": []any{"green", "purple", "red", "black"}, "ediblePortions": []any{"hearts", "stems", "leaves"}},
			},
		},
		HashFiles: func(patterns []string) (string, error) {
			return "hash(" + strings.Join(patterns, "|") + ")", nil
		},
	}
}

type evalCase struct {
	expr string
	want any    // ignored when err is set
	err  string // substring of the error message; "" means no error
	col  int    // expected error column when err is set
}

var evalCases = []evalCase{
	// [expr] "Literals": boolean, null, number ("any number format supported
	// by JSON", plus hex and exponent as in the example), string.
	{`null`, nil, "", 0},
	{`false`, false, "", 0},
	{`true`, true, "", 0},
	{`711`, 711.0, "", 0},        // myIntegerNumber
	{`-9.2`, -9.2, "", 0},        // myFloatNumber
	{`0xff`, 255.0, "", 0},       // myHexNumber
	{`-2.99e-2`, -0.0299, "", 0}, // myExponentialNumber
	{`'Mona the Octocat'`, "Mona the Octocat", "", 0},
	{`'It''s open source!'`, "It's open source!", "", 0}, // myStringInBraces
	{`''`, "", "", 0},
	{`1.5E3`, 1500.0, "", 0},
	{`0`, 0.0, "", 0},
	// [expr] "Literals": "Wrapping with double quotes (") will throw an error."
	{`"Mona"`, nil, "single quotes", 1},
	// [ours] integers beyond 32 bits (actionlint's IntNode) still work.
	{`2147483648`, 2147483648.0, "", 0},
	{`12345678901234 > 12345678901233`, true, "", 0},
	{`-2147483649 < 0`, true, "", 0},
	{`0x100000000`, 4294967296.0, "", 0},

	// [contexts] "Context availability"/property syntax: `github.sha` and
	// index syntax `github['sha']` are equivalent.
	{`github.sha`, "ffac537e6cbbf934b08745a378932722df287a53", "", 0},
	{`github['sha']`, "ffac537e6cbbf934b08745a378932722df287a53", "", 0},
	{`github.event_name`, "push", "", 0},
	// [runner] context and property names are case-insensitive.
	{`GITHUB.Event_Name`, "push", "", 0},
	{`github['EVENT_NAME']`, "push", "", 0},
	{`steps.build.outputs.version`, "1.2.3", "", 0},
	{`env.my_var`, "hello", "", 0},
	{`env['MY_VAR']`, "hello", "", 0},
	{`matrix.node`, 18.0, "", 0},
	{`inputs.count`, 3.0, "", 0},
	{`github.event.issue.labels[0].name`, "bug", "", 0},
	{`github.event.issue.labels[1].name`, "help wanted", "", 0},
	// [runner] an array index is converted to a number and rounded down.
	{`github.event.issue.labels['1'].name`, "help wanted", "", 0},
	{`github.event.issue.labels[1.7].name`, "help wanted", "", 0},
	// [contexts] "If you attempt to dereference a nonexistent property, it
	// will evaluate to an empty string" (null, which prints as "").
	{`github.nonexistent`, nil, "", 0},
	{`github.nonexistent.deeper`, nil, "", 0},
	{`github.event.issue.labels[5]`, nil, "", 0},
	{`github.event.issue.labels[-1]`, nil, "", 0},
	{`github.event_name.length`, nil, "", 0},
	{`github.event.issue.labels.name`, nil, "", 0},
	{`null.x`, nil, "", 0},
	{`(github).event_name`, "push", "", 0},
	{`github[github.event_name]`, nil, "", 0},

	// [expr] "Object filters": fruits.*.name.
	{`fruits.*.name`, []any{"apple", "orange", "pear"}, "", 0},
	// [runner] elements lacking the property are left out.
	{`fruits.*.quantity`, []any{1.0, 2.0}, "", 0},
	// [expr] "Object filters" on an object: vegetables.*.ediblePortions
	// ("the order of the output cannot be guaranteed"; ours is by key).
	{`vegetables.*.ediblePortions`, []any{
		[]any{"hearts", "stems", "leaves"},
		[]any{"roots", "stems", "leaves"},
		[]any{"roots", "stalks"},
	}, "", 0},
	// [expr] "contains" example: github.event.issue.labels.*.name.
	{`github.event.issue.labels.*.name`, []any{"bug", "help wanted"}, "", 0},
	// [runner] a filter after a filter flattens one level.
	{`vegetables.*.ediblePortions.*`, []any{"hearts", "stems", "leaves", "roots", "stems", "leaves", "roots", "stalks"}, "", 0},
	{`fruits.*.name[0]`, []any{}, "", 0},
	{`github.event_name.*`, []any{}, "", 0},
	{`null.*`, []any{}, "", 0},
	{`fruits.*.NAME`, []any{"apple", "orange", "pear"}, "", 0},

	// [expr] "Operators": ! (not).
	{`!true`, false, "", 0},
	{`!false`, true, "", 0},
	{`!0`, true, "", 0},
	{`!''`, true, "", 0},
	{`!'false'`, false, "", 0},
	{`!null`, true, "", 0},
	{`!!github.sha`, true, "", 0},
	// [expr] "Literals" note: falsy values are false, 0, -0, "", '', null;
	// empty arrays and objects are truthy.
	{`!-0`, true, "", 0},
	{`!fromJSON('[]')`, false, "", 0},
	{`!fromJSON('{}')`, false, "", 0},
	// [expr] "Operators": < <= > >= == !=.
	{`1 < 2`, true, "", 0},
	{`2 <= 2`, true, "", 0},
	{`3 > 2`, true, "", 0},
	{`2 >= 3`, false, "", 0},
	{`1 == 1.0`, true, "", 0},
	{`1 != 2`, true, "", 0},
	// [expr] "Operators": "GitHub ignores case when comparing strings."
	{`'abc' == 'ABC'`, true, "", 0},
	{`'abc' != 'abd'`, true, "", 0},
	{`'a' < 'B'`, true, "", 0},
	{`'B' > 'a'`, true, "", 0},
	{`github.event_name == 'PUSH'`, true, "", 0},
	// [runner] strings compare as strings, not numbers.
	{`'10' > '9'`, false, "", 0},
	// [expr] "Operators": ( ) logical grouping; && binds tighter than ||.
	{`true || false && false`, true, "", 0},
	{`(true || false) && false`, false, "", 0},
	// [runner] <, <=, >, >= bind tighter than == and !=; chains group left.
	{`1 < 2 < 3`, true, "", 0},
	{`3 > 2 > 1`, false, "", 0},
	{`1 < (2 < 3)`, false, "", 0},
	{`1 < 2 == 2 > 1`, true, "", 0},
	{`2 == 2 < 3`, false, "", 0},
	// [expr] "Operators": && and || return an operand, which makes the
	// ternary-like example work.
	{`github.ref == 'refs/heads/main' && 'value_for_main_branch' || 'value_for_other_branches'`, "value_for_main_branch", "", 0},
	{`github.ref == 'refs/heads/dev' && 'value_for_main_branch' || 'value_for_other_branches'`, "value_for_other_branches", "", 0},
	{`true && 'yes'`, "yes", "", 0},
	{`'' && 'x'`, "", "", 0},
	{`0 || 'fallback'`, "fallback", "", 0},
	{`'first' || 'second'`, "first", "", 0},
	{`null || null`, nil, "", 0},
	{`github.nonexistent || 'default'`, "default", "", 0},
	// Short-circuit: the right side is not evaluated.
	{`false && fromJSON('not json')`, false, "", 0},
	{`true || fromJSON('not json')`, true, "", 0},

	// [expr] "Operators": loose equality; "If the types do not match, GitHub
	// coerces the type to a number" per the conversion table.
	{`null == 0`, true, "", 0},  // Null -> 0
	{`true == 1`, true, "", 0},  // Boolean true -> 1
	{`false == 0`, true, "", 0}, // Boolean false -> 0
	{`'' == 0`, true, "", 0},    // String: "empty string returns 0"
	{`'42' == 42`, true, "", 0}, // String: parsed from any legal JSON number
	{`'3.0' == 3`, true, "", 0},
	{`'1e3' == 1000`, true, "", 0},
	{`'-2.5' == -2.5`, true, "", 0},
	{`'abc' == 0`, false, "", 0}, // String: otherwise NaN
	{`'abc' != 0`, true, "", 0},
	{`true == 'true'`, false, "", 0}, // 1 vs NaN
	{`null == false`, true, "", 0},
	{`null == null`, true, "", 0},
	{`'1' == true`, true, "", 0},
	{`1 < '2'`, true, "", 0},
	{`'10' > 9`, true, "", 0},
	{`null < 1`, true, "", 0},
	{`true > false`, true, "", 0},
	// [runner] whitespace around the number and 0x hex are accepted.
	{`' 123 ' == 123`, true, "", 0},
	{`'0xff' == 255`, true, "", 0},
	// [runner] null becomes 0, which then equals '' (also 0).
	{`null == ''`, true, "", 0},
	// [expr] Array and Object -> NaN; "Objects and arrays are only
	// considered equal when they are the same instance."
	{`fromJSON('[]') == 0`, false, "", 0},
	{`fromJSON('{}') == fromJSON('{}')`, false, "", 0},
	{`fromJSON('[1]') == fromJSON('[1]')`, false, "", 0},
	{`github.event == github.event`, true, "", 0},
	{`github.event != github.event`, false, "", 0},
	{`fromJSON('[1]') < 2`, false, "", 0},
	// [expr] "When NaN is one of the operands of any relational comparison
	// (>, <, >=, <=), the result is always false."
	{`'abc' < 1`, false, "", 0},
	{`'abc' > 1`, false, "", 0},
	{`'abc' <= 1`, false, "", 0},
	{`'abc' >= 1`, false, "", 0},
	{`'abc' == 'abc' && 'x' >= fromJSON('{}')`, false, "", 0},

	// [expr] "Functions": contains(search, item).
	{`contains('Hello world', 'llo')`, true, "", 0},                                    // example
	{`contains(github.event.issue.labels.*.name, 'bug')`, true, "", 0},                 // example
	{`contains(fromJSON('["push", "pull_request"]'), github.event_name)`, true, "", 0}, // example
	{`contains('Hello world', 'LLO')`, true, "", 0},                                    // case-insensitive
	{`contains('Hello world', 'xyz')`, false, "", 0},
	{`contains(github.event.issue.labels.*.name, 'BUG')`, true, "", 0},
	{`contains(github.event.issue.labels.*.name, 'help')`, false, "", 0}, // whole elements only
	{`contains(fromJSON('[1, 2]'), '2')`, true, "", 0},                   // loose equality
	{`contains(fromJSON('[1, 2]'), 3)`, false, "", 0},
	{`contains(123, 2)`, true, "", 0}, // values are converted to strings
	{`contains('true', true)`, true, "", 0},
	{`contains(github.event, 'issue')`, false, "", 0}, // [runner] objects: false
	{`CONTAINS('abc', 'b')`, true, "", 0},             // function names ignore case
	// [expr] startsWith(searchString, searchValue), endsWith(...).
	{`startsWith('Hello world', 'He')`, true, "", 0}, // example
	{`startsWith('Hello world', 'he')`, true, "", 0},
	{`startsWith('Hello world', 'world')`, false, "", 0},
	{`startsWith(github.ref, 'refs/heads/')`, true, "", 0},
	{`startsWith(123, 1)`, true, "", 0},
	{`startsWith(github.event, '')`, false, "", 0}, // [runner] non-primitive: false
	{`endsWith('Hello world', 'ld')`, true, "", 0}, // example
	{`endsWith('Hello world', 'LD')`, true, "", 0},
	{`endsWith('Hello world', 'He')`, false, "", 0},
	// [expr] format(string, replaceValue0, ...).
	{`format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')`, "Hello Mona the Octocat", "", 0},         // example
	{`format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')`, "{Hello Mona the Octocat!}", "", 0}, // example: escaping braces
	{`format('{0}{0}', 'a')`, "aa", "", 0},
	{`format('{1}-{0}', 'a', 'b')`, "b-a", "", 0},
	{`format('{0} {1} {2}', 1.5, true, null)`, "1.5 true ", "", 0},
	{`format('no placeholders')`, "no placeholders", "", 0},
	{`format('{0}', github.event)`, "Object", "", 0},
	{`format('{0}', fruits.*.name)`, "Array", "", 0},
	{`format('{1}', 'a')`, nil, "refers to argument {1}", 1},
	{`format('{0', 'a')`, nil, "invalid format string", 1},
	{`format('}', 'a')`, nil, "invalid format string", 1},
	{`format('{x}', 'a')`, nil, "invalid format string", 1},
	{`format('{0:d}', 1)`, nil, "invalid format string", 1},
	// [expr] join(array, optionalSeparator).
	{`join(github.event.issue.labels.*.name, ', ')`, "bug, help wanted", "", 0}, // example
	{`join(fromJSON('["a", "b", "c"]'))`, "a,b,c", "", 0},                       // default separator ','
	{`join('abc')`, "abc", "", 0},                                               // "array can be ... a string"
	{`join('abc', '-')`, "abc", "", 0},
	{`join(fromJSON('[]'), '-')`, "", "", 0},
	{`join(fromJSON('[1, true, null, [], {}]'), ' ')`, "1 true  Array Object", "", 0},
	{`join(github.event)`, "", "", 0},
	{`join(123)`, "123", "", 0},
	// [expr] toJSON(value): "a pretty-print JSON representation".
	{`toJSON(job)`, "{\n  \"status\": \"success\"\n}", "", 0}, // example
	{`toJSON(1)`, "1", "", 0},
	{`toJSON(null)`, "null", "", 0},
	{`toJSON(true)`, "true", "", 0},
	{`toJSON('a"b\c')`, `"a\"b\\c"`, "", 0},
	{`toJSON(fromJSON('[]'))`, "[]", "", 0},
	{`toJSON(fromJSON('{}'))`, "{}", "", 0},
	{`toJSON(fromJSON('[1,[2,{"a":null}]]'))`, "[\n  1,\n  [\n    2,\n    {\n      \"a\": null\n    }\n  ]\n]", "", 0},
	{`toJSON(fruits.*.name)`, "[\n  \"apple\",\n  \"orange\",\n  \"pear\"\n]", "", 0},
	{`toJSON(env.time)`, `"3"`, "", 0},
	// [expr] fromJSON(value).
	{`fromJSON(needs.job1.outputs.matrix).include[0].project`, "foo", "", 0}, // "Example returning a JSON object"
	{`fromJSON(needs.job1.outputs.matrix).include.*.config`, []any{"Debug", "Release"}, "", 0},
	{`fromJSON(env.continue)`, true, "", 0}, // "Example returning a JSON data type"
	{`fromJSON(env.time)`, 3.0, "", 0},      // "Example returning a JSON data type"
	{`fromJSON('["push", "pull_request"]')`, []any{"push", "pull_request"}, "", 0},
	{`fromJSON('"s"')`, "s", "", 0},
	{`fromJSON('null')`, nil, "", 0},
	{`fromJSON(' 1.5 ')`, 1.5, "", 0},
	{`fromJSON('[1,')`, nil, "invalid JSON", 1},
	{`fromJSON('')`, nil, "empty input", 1},
	{`fromJSON('{}') == fromJSON('1') || fromJSON('x')`, nil, "invalid JSON", 36},
	// [expr] hashFiles(path): via Env.HashFiles.
	{`hashFiles('**/package-lock.json')`, "hash(**/package-lock.json)", "", 0},                                    // example
	{`hashFiles('**/package-lock.json', '**/Gemfile.lock')`, "hash(**/package-lock.json|**/Gemfile.lock)", "", 0}, // example
	// [expr] "Status check functions"; docEnv's status is success.
	{`success()`, true, "", 0},
	{`always()`, true, "", 0},
	{`failure()`, false, "", 0},
	{`cancelled()`, false, "", 0},
	{`failure() && steps.build.conclusion == 'failure'`, false, "", 0},

	// Errors: syntax, with the column of the problem.
	{``, nil, "unexpected end of input", 1},
	{`1 +`, nil, "unexpected character '+'", 3},
	{`github.`, nil, "unexpected end of input", 8},
	{`(1`, nil, "unexpected end of input", 3},
	{`1 2`, nil, "did not reach end of input", 3},
	{`github.sha ==`, nil, "unexpected end of input", 14},
	{`=`, nil, "end of expression", 2},
	{`'unterminated`, nil, "unterminated string literal", 14},
	{`github.sha }} x`, nil, `unexpected "}"`, 12},
	{`github.sha }`, nil, `unexpected "}"`, 12},
	{`01`, nil, "unexpected character '1'", 2},
	{`${{ 1 }}`, nil, "unexpected character '$'", 1},
	{`9999999999(1)`, nil, `unexpected "("`, 1},
	// Errors: unknown function and wrong argument counts, naming the function.
	{`nope(1)`, nil, `unknown function "nope"`, 1},
	{`1 == toJSON()`, nil, "toJSON() takes 1 argument, got 0", 6},
	{`contains('a')`, nil, "contains() takes 2 arguments, got 1", 1},
	{`startsWith('a', 'b', 'c')`, nil, "startsWith() takes 2 arguments, got 3", 1},
	{`join()`, nil, "join() takes 1 to 2 arguments, got 0", 1},
	{`join('a', 'b', 'c')`, nil, "join() takes 1 to 2 arguments, got 3", 1},
	{`format()`, nil, "format() takes at least 1 argument, got 0", 1},
	{`hashFiles()`, nil, "hashFiles() takes at least 1 argument, got 0", 1},
	{`success(1)`, nil, "success() takes 0 arguments, got 1", 1},
	// Errors: unknown context, naming it and the known ones, even where
	// evaluation would not reach it.
	{`secrets.TOKEN`, nil, `unknown context "secrets"; available contexts: env, fruits, github, inputs, job, matrix, needs, runner, steps, vegetables`, 1},
	{`github.sha && vars.X`, nil, `unknown context "vars"`, 15},
	{`false && vars.X`, nil, `unknown context "vars"`, 10},
	{`format('{0}', strategy.job-index)`, nil, `unknown context "strategy"`, 15},
}

func TestEvalConformance(t *testing.T) {
	env := docEnv()
	for _, tc := range evalCases {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Eval(tc.expr, env)
			if tc.err != "" {
				assertError(t, err, tc.col, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("Eval(%q): unexpected error %v", tc.expr, err)
			}
			if !sameValue(got, tc.want) {
				t.Errorf("Eval(%q) = %#v, want %#v", tc.expr, got, tc.want)
			}
		})
	}
	if len(evalCases) < 120 {
		t.Errorf("only %d conformance cases", len(evalCases))
	}
}

func assertError(t *testing.T, err error, col int, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", substr)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !strings.Contains(e.Msg, substr) {
		t.Errorf("error %q does not contain %q", e.Msg, substr)
	}
	if e.Col != col {
		t.Errorf("error %q at col %d, want col %d", e.Msg, e.Col, col)
	}
	if want := "col " + itoa(col) + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
	}
}

func itoa(n int) string { return String(float64(n)) }

// sameValue compares evaluation results: want may use Go ints for numbers,
// and NaN equals NaN.
func sameValue(got, want any) bool {
	got, want = deepNorm(got), deepNorm(want)
	if g, ok := got.(float64); ok {
		if w, ok := want.(float64); ok && math.IsNaN(g) && math.IsNaN(w) {
			return true
		}
	}
	return reflect.DeepEqual(got, want)
}

func deepNorm(v any) any {
	switch x := norm(v).(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepNorm(e)
		}
		return out
	case filtered:
		return deepNorm([]any(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepNorm(e)
		}
		return out
	default:
		return x
	}
}

func TestEvalStatusAndHashFiles(t *testing.T) {
	// [expr] "Status check functions": success() is false once a previous
	// step failed or the run was cancelled; failure() and cancelled() report
	// each; always() is always true.
	for _, tc := range []struct {
		status                              Status
		success, failure, cancelled, always bool
	}{
		{Status{}, true, false, false, true},
		{Status{Failed: true}, false, true, false, true},
		{Status{Cancelled: true}, false, false, true, true},
		{Status{Failed: true, Cancelled: true}, false, true, true, true},
	} {
		env := &Env{Status: tc.status}
		for name, want := range map[string]bool{"success()": tc.success, "failure()": tc.failure, "cancelled()": tc.cancelled, "always()": tc.always} {
			got, err := Eval(name, env)
			if err != nil || got != want {
				t.Errorf("%+v: Eval(%s) = %v, %v; want %v", tc.status, name, got, err, want)
			}
		}
	}

	// hashFiles without Env.HashFiles.
	_, err := Eval(`hashFiles('x')`, &Env{})
	assertError(t, err, 1, "hashFiles() is not available here")
	// An error from Env.HashFiles is reported at the call.
	env := &Env{HashFiles: func([]string) (string, error) { return "", errors.New("boom") }}
	_, err = Eval(`'a' && hashFiles('x')`, env)
	assertError(t, err, 8, "hashFiles(): boom")
	// A nil Env has no contexts.
	_, err = Eval(`github.sha`, nil)
	assertError(t, err, 1, `unknown context "github": no contexts are available here`)
}

func TestEvalDoesNotModifyContexts(t *testing.T) {
	env := docEnv()
	if _, err := Eval(`toJSON(fruits.*.name) && vegetables.*.colors.*`, env); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env.Contexts["fruits"], docEnv().Contexts["fruits"]) ||
		!reflect.DeepEqual(env.Contexts["vegetables"], docEnv().Contexts["vegetables"]) {
		t.Error("evaluation modified the contexts")
	}
}

func TestErrorColumnsCountCharacters(t *testing.T) {
	// Col counts characters, not bytes.
	_, err := Eval(`'é' == 1 2`, &Env{})
	assertError(t, err, 10, "did not reach end of input")
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		// Numbers: integers without decimals, otherwise up to 15
		// significant digits as GitHub's runner prints them (.NET "G15").
		{0.0, "0"},
		{math.Copysign(0, -1), "0"},
		{1.0, "1"},
		{-1.0, "-1"},
		{3.0, "3"},
		{711.0, "711"},
		{255.0, "255"},
		{1.5, "1.5"},
		{-9.2, "-9.2"},
		{-0.0299, "-0.0299"},
		{0.1 + 0.2, "0.3"},
		{1.0 / 3, "0.333333333333333"},
		{2.0 / 3, "0.666666666666667"},
		{123456789012345.0, "123456789012345"},
		{100000000000000.0, "100000000000000"},
		{1e15, "1E+15"},
		{1234567890123456.0, "1.23456789012346E+15"},
		{2147483648.0, "2147483648"},
		{1e100, "1E+100"},
		{0.0001, "0.0001"},
		{0.00001, "1E-05"},
		{2.5e-7, "2.5E-07"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		// Go numeric types are converted.
		{3, "3"},
		{int64(-7), "-7"},
		{float32(0.5), "0.5"},
		// Other kinds.
		{nil, ""},
		{true, "true"},
		{false, "false"},
		{"s", "s"},
		{[]any{}, "Array"},
		{[]string{"a"}, "Array"},
		{map[string]any{}, "Object"},
		{map[string]string{}, "Object"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTruthy(t *testing.T) {
	// [expr] "Literals": falsy values are false, 0, -0, "", '', null (and
	// NaN); everything else is truthy.
	for _, v := range []any{false, 0.0, math.Copysign(0, -1), "", nil, math.NaN(), 0} {
		if Truthy(v) {
			t.Errorf("Truthy(%#v) = true", v)
		}
	}
	for _, v := range []any{true, 1.0, -1.0, "0", "false", " ", []any{}, map[string]any{}, math.Inf(1), 2} {
		if !Truthy(v) {
			t.Errorf("Truthy(%#v) = false", v)
		}
	}
}

func TestEqual(t *testing.T) {
	arr := []any{1.0}
	obj := map[string]any{"a": 1.0}
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{nil, nil, true},
		{nil, 0.0, true},
		{nil, false, true},
		{true, 1.0, true},
		{"ABC", "abc", true},
		{"1", 1.0, true},
		{1, 1.0, true},
		{" 0x10 ", 16.0, true},
		{"x", "y", false},
		{math.NaN(), math.NaN(), false},
		{arr, arr, true},
		{arr, []any{1.0}, false},
		{obj, obj, true},
		{obj, map[string]any{"a": 1.0}, false},
		{obj, "Object", false},
		{arr, 1.0, false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%#v, %#v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"", 0}, {"  ", 0}, {"1", 1}, {" 1 ", 1}, {"+1", 1}, {"-1.5", -1.5}, {".5", 0.5}, {"5.", 5},
		{"1e3", 1000}, {"1E-3", 0.001}, {"0x1F", 31}, {"0xffffffff", -1}, {"0o17", 15},
		{"Infinity", math.Inf(1)}, {"-Infinity", math.Inf(-1)},
		{"abc", math.NaN()}, {"1a", math.NaN()}, {"0x", math.NaN()}, {"0x1ffffffff", math.NaN()},
		{"1_000", math.NaN()}, {"NaN", math.NaN()}, {"inf", math.NaN()}, {"1e", math.NaN()}, {".", math.NaN()},
	} {
		got := parseNumber(tc.in)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("parseNumber(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	known := []string{"github", "env", "Matrix"}
	for _, tc := range []struct {
		s   string
		err string
		col int
	}{
		{"no expressions here", "", 0},
		{"echo ${{ github.sha }} ${{ env.X }}", "", 0},
		{"${{ GitHub.sha }}", "", 0},
		{"${{ matrix.os }}", "", 0},
		{"${{ hashFiles('**/go.sum') }}", "", 0},
		{"${{ success() || failure() }}", "", 0},
		{"a }} b", "", 0},
		{"${{ secrets.X }}", `unknown context "secrets"; available contexts: env, github, matrix`, 5},
		{"ok ${{ github.sha }} ${{ false && vars.X }}", `unknown context "vars"`, 35},
		{"${{ 1 + }}", "unexpected character '+'", 7},
		{"a ${{ x", `unterminated expression: "${{" has no closing "}}"`, 3},
		{"a ${{ 'x }}", "a string literal in it is not closed", 3},
		{"${{ nope() }}", `unknown function "nope"`, 5},
		{"${{ join() }}", "join() takes 1 to 2 arguments, got 0", 5},
		{"${{ }}", "unexpected end of input", 5},
		{"é${{ x }}", `unknown context "x"`, 6},
	} {
		err := Check(tc.s, known)
		if tc.err == "" {
			if err != nil {
				t.Errorf("Check(%q) = %v", tc.s, err)
			}
			continue
		}
		t.Run(tc.s, func(t *testing.T) { assertError(t, err, tc.col, tc.err) })
	}
	if err := Check("${{ github.sha }}", nil); err == nil {
		t.Error("Check with no known contexts accepted github")
	}
}

func TestCheckIf(t *testing.T) {
	known := []string{"github", "steps"}
	for _, tc := range []struct {
		cond string
		err  string
		col  int
	}{
		{"", "", 0},
		{"   ", "", 0},
		{"github.ref == 'refs/heads/main'", "", 0},
		{"${{ github.ref == 'refs/heads/main' }}", "", 0},
		{"failure() && steps.build.conclusion == 'failure'", "", 0},
		{"${{ github.ref }} && ${{ steps.x.outputs.y }}", "", 0},
		{"${{ matrix.os }}", `unknown context "matrix"`, 5},
		{"  matrix.os == 'x'", `unknown context "matrix"`, 3},
		{"${{ github.x }} && ${{ needs.y }}", `unknown context "needs"`, 24},
		{"github.ref ==", "unexpected end of input", 14},
		{"${{ github.ref", "unterminated expression", 1},
		{"always(1)", "always() takes 0 arguments, got 1", 1},
	} {
		err := CheckIf(tc.cond, known)
		if tc.err == "" {
			if err != nil {
				t.Errorf("CheckIf(%q) = %v", tc.cond, err)
			}
			continue
		}
		t.Run(tc.cond, func(t *testing.T) { assertError(t, err, tc.col, tc.err) })
	}
}

func TestGoValuesInContexts(t *testing.T) {
	// [ours] contexts may hold ordinary Go values; they read as JSON-like.
	type step struct {
		Outcome string `json:"outcome"`
		Count   int    `json:"count"`
	}
	n := 5
	env := &Env{Contexts: map[string]any{
		"steps":  map[string]step{"build": {Outcome: "success", Count: 2}},
		"matrix": map[string][]int{"shard": {1, 2, 3}},
		"inputs": map[string]any{"ptr": &n, "nilptr": (*int)(nil), "u8": uint8(7), "keys": map[int]string{1: "one"}},
	}}
	for expr, want := range map[string]any{
		`steps.build.outcome`:         "success",
		`steps.Build.COUNT`:           2.0,
		`matrix.shard[2]`:             3.0,
		`join(matrix.shard, '-')`:     "1-2-3",
		`contains(matrix.shard, '2')`: true,
		`inputs.ptr`:                  5.0,
		`inputs.nilptr`:               nil,
		`inputs.u8 == 7`:              true,
		`inputs.keys['1']`:            "one",
		`toJSON(steps)`:               "{\n  \"build\": {\n    \"count\": 2,\n    \"outcome\": \"success\"\n  }\n}",
	} {
		got, err := Eval(expr, env)
		if err != nil || !sameValue(got, want) {
			t.Errorf("Eval(%q) = %#v, %v; want %#v", expr, got, err, want)
		}
	}
}

func TestToJSONStrings(t *testing.T) {
	got, err := Eval(`toJSON(inputs.s)`, &Env{Contexts: map[string]any{
		"inputs": map[string]any{"s": "q\"b\\n\nr\rt\tb\bf\fc\x01u\u2028<&>é"},
	}})
	want := `"q\"b\\n\nr\rt\tb\bf\fc\u0001u\u2028<&>é"`
	if err != nil || got != want {
		t.Errorf("toJSON = %s, %v; want %s", got, err, want)
	}
}

// TestValuesAreBounded: nesting format() grows a value 64-fold per level;
// a kilobyte of expression must not make gigabytes in the server.
func TestValuesAreBounded(t *testing.T) {
	arg := "'x'"
	for range 6 {
		arg = "format('" + strings.Repeat("{0}", 64) + "', " + arg + ")"
	}
	for _, src := range []string{arg, "join(fromJSON('[1]'), " + arg + ")", "toJSON(" + arg + ")"} {
		if _, err := Eval(src, &Env{}); err == nil || !strings.Contains(err.Error(), "bytes") {
			t.Errorf("%.60s…: %v", src, err)
		}
	}
	big := "format('" + strings.Repeat("{0}", 64) + "', format('" + strings.Repeat("{0}", 64) + "', format('" + strings.Repeat("{0}", 64) + "', 'xxxx')))"
	if _, err := Interpolate("${{ "+big+" }}${{ "+big+" }}", &Env{}); err == nil {
		t.Error("two 1 MiB values interpolated into one text")
	}
}
