package expr

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzEval checks that no input makes the package panic, that every error is
// an *Error with a column inside the input, and that results are JSON-like.
func FuzzEval(f *testing.F) {
	for _, tc := range evalCases {
		f.Add(tc.expr)
	}
	for _, s := range []string{
		"${{ 1 }}", "a ${{ 'b }}' }} c", "${{", "}}", "${{ false }} && x",
		"((((((1))))))", "!!!!!!true", "a.b.c.*.*.*[0]['x']", "fromJSON('[[[[[]]]]]')",
		"format('{0}{1}{2}', 1, 2, 3)", "1 < 2 < 3 == 4 > 5 != 6", "-0x7fffffff", "99999999999999999999999",
		"\x00", "'\xff'", "github.\xff", "'é' == 'É'",
	} {
		f.Add(s)
	}
	known := []string{"github", "env", "steps", "matrix"}
	f.Fuzz(func(t *testing.T, s string) {
		env := docEnv()
		limit := utf8.RuneCountInString(s) + 1
		checkErr := func(what string, err error) {
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s(%q): error %v (%T) is not an *Error", what, s, err, err)
			}
			if e.Col < 1 || e.Col > limit {
				t.Fatalf("%s(%q): column %d outside 1..%d", what, s, e.Col, limit)
			}
		}
		v, err := Eval(s, env)
		checkErr("Eval", err)
		if err == nil {
			checkJSONLike(t, s, v)
			_ = String(v)
			_ = Truthy(v)
			_ = Equal(v, v)
		}
		_, err = Interpolate(s, env)
		checkErr("Interpolate", err)
		_, err = If(s, env)
		checkErr("If", err)
		checkErr("Check", Check(s, known))
		checkErr("CheckIf", CheckIf(s, known))
	})
}

func checkJSONLike(t *testing.T, src string, v any) {
	t.Helper()
	switch x := v.(type) {
	case nil, bool, float64, string:
	case []any:
		for _, e := range x {
			checkJSONLike(t, src, norm(e))
		}
	case map[string]any:
		for _, e := range x {
			checkJSONLike(t, src, norm(e))
		}
	default:
		t.Fatalf("Eval(%q) returned %T", src, v)
	}
}
