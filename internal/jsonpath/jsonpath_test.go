package jsonpath

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAtNamesTheValueOfATypeError(t *testing.T) {
	type item struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	type doc struct {
		A     int    `json:"a"`
		Items []item `json:"items"`
		Inner struct {
			Deep [][]item `json:"deep"`
			B    bool     `json:"b"`
		} `json:"inner"`
		Tail string `json:"tail"`
	}
	cases := []struct{ json, want string }{
		{`{"a": "x"}`, "a"},
		{`{"items": [{"n": 1}, {"n": "2"}]}`, "items[1].n"},
		{`{"items": [{"n": 1, "s": "a"}, {"s": 5}]}`, "items[1].s"},
		{`{"items": {"n": 1}}`, "items"},
		{`{"items": [{"n": 1}], "inner": {"deep": [[], [{"n": 1}, {"s": {}}]]}}`, "inner.deep[1][1].s"},
		{`{"inner": {"deep": [[{"n": 1}]], "b": 3}}`, "inner.b"},
		{`{"items": [{"n": 1}, {"n": 2}], "inner": {"b": true}, "tail": []}`, "tail"},
		{`{"a": 1, "items": [[1]]}`, "items[0]"},
	}
	for _, c := range cases {
		var d doc
		err := json.Unmarshal([]byte(c.json), &d)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Fatalf("%s: not a type error: %v", c.json, err)
		}
		if got := At([]byte(c.json), te.Offset); got != c.want {
			t.Errorf("%s: path %q, want %q (encoding/json says %q)", c.json, got, c.want, te.Field)
		}
	}
	if got := At([]byte(`{"a": `), 100); got != "" {
		t.Errorf("truncated document: %q", got)
	}
}

func TestUnknownFieldNamesTheFullPath(t *testing.T) {
	type check struct {
		Path     string `json:"path"`
		Interval int
	}
	type Common struct {
		Labels map[string]check `json:"labels"`
	}
	type doc struct {
		Common
		Name   string  `json:"name"`
		Check  *check  `json:"check"`
		Checks []check `json:"checks"`
		Any    any     `json:"any"`
		Hidden string  `json:"-"`
	}
	cases := []struct{ json, want string }{
		{`{"nmae": "x"}`, "nmae"},
		{`{"check": {"pth": "/"}}`, "check.pth"},
		{`{"checks": [{"path": "/"}, {"path": "/", "pth": "/"}]}`, "checks[1].pth"},
		{`{"labels": {"a": {"interval": 1, "extra": 2}}}`, "labels.a.extra"},
		// A key that exists elsewhere is skipped until it is unknown where it stands.
		{`{"any": {"extra": 1}, "check": {"Interval": 1}, "extra": 2}`, "extra"},
		{`{"Hidden": "x"}`, "Hidden"},
	}
	for _, c := range cases {
		dec := json.NewDecoder(strings.NewReader(c.json))
		dec.DisallowUnknownFields()
		var v doc
		err := dec.Decode(&v)
		if err == nil || !strings.HasPrefix(err.Error(), "json: unknown field ") {
			t.Fatalf("%s: decoding gave %v, want an unknown field error", c.json, err)
		}
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if got := UnknownField([]byte(c.json), reflect.TypeOf(v), name); got != c.want {
			t.Errorf("%s: got %q, want %q", c.json, got, c.want)
		}
	}
}
