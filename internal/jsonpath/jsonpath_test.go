package jsonpath

import (
	"encoding/json"
	"errors"
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
