package specfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSuggest(t *testing.T) {
	phases := []string{"install", "pre_build", "build", "post_build"}
	types := []string{"build", "test", "image", "deploy", "approval", "invoke"}
	configs := []string{"CodeDeployDefault.ECSAllAtOnce", "CodeDeployDefault.ECSCanary10Percent15Minutes", "CodeDeployDefault.ECSCanary10Percent5Minutes"}
	cases := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"biuld", phases, "build"},        // two letters swapped: one edit
		{"buld", phases, "build"},         // a letter dropped
		{"prebuild", phases, "pre_build"}, // a letter dropped
		{"Build", phases, "build"},        // case alone
		{"POST_BUILD", phases, "post_build"},
		{"compile", types, ""}, // nothing close
		{"tset", types, "test"},
		{"imgae", types, "image"},
		{"b", types, ""},     // one letter: one edit allowed, none is that close
		{"build", types, ""}, // itself: nothing to suggest
		{"", types, ""},
		{"CodeDeployDefault.ECSAllAtOnse", configs, "CodeDeployDefault.ECSAllAtOnce"},
		{"codedeploydefault.ecsallatonce", configs, "CodeDeployDefault.ECSAllAtOnce"},
		{"CodeDeployDefault.ECSCanary10Percent5Minute", configs, "CodeDeployDefault.ECSCanary10Percent5Minutes"},
		{"ECSAllAtOnce", configs, ""}, // too far from any whole name
		{"dèploy", types, "deploy"},   // letters, not bytes, are counted
		{strings.Repeat("x", 100000), types, ""},
	}
	for _, c := range cases {
		t.Run(c.name[:min(len(c.name), 40)], func(t *testing.T) {
			if got := Suggest(c.name, c.candidates); got != c.want {
				t.Fatalf("Suggest(%q) = %q, want %q", c.name, got, c.want)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	cands := []string{"rolling", "blue-green"}
	cases := []struct{ name, allowed, want string }{
		{"bluegreen", "use rolling or blue-green", `"bluegreen" is wrong; did you mean blue-green? (use rolling or blue-green)`},
		{"canary", "use rolling or blue-green", `"canary" is wrong; use rolling or blue-green`},
		{"rollin", "", `"rollin" is wrong; did you mean rolling?`},
		{"canary", "", `"canary" is wrong`},
	}
	for _, c := range cases {
		if got := Unknown(fmt.Sprintf("%q is wrong", c.name), c.name, cands, c.allowed); got != c.want {
			t.Errorf("Unknown(%q, %q) = %s, want %s", c.name, c.allowed, got, c.want)
		}
	}
}

func TestErrorsListsEveryProblemInFileOrder(t *testing.T) {
	l := Errors{
		{File: "f.yml", Line: 9, Column: 3, Field: "c", Message: "third"},
		{File: "f.yml", Line: 2, Column: 7, Field: "b", Message: "second"},
		{File: "f.yml", Line: 2, Column: 1, Field: "a", Message: "first"},
		{File: "f.yml", Line: 9, Column: 3, Field: "c", Message: "third"}, // found twice, said once
	}
	err := l.Err()
	want := "f.yml:2:1: a: first\nf.yml:2:7: b: second\nf.yml:9:3: c: third"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	var first *Error
	if !errors.As(err, &first) || first.Field != "a" {
		t.Fatalf("errors.As found %v, want the first problem", first)
	}
	var all Errors
	if !errors.As(err, &all) || len(all) != 3 {
		t.Fatalf("errors.As found %v, want all three", all)
	}
	if Errors(nil).Err() != nil {
		t.Fatal("no problem must be a nil error")
	}
	var many Errors
	for i := range maxListed + 5 {
		many = append(many, &Error{File: "f.yml", Line: i + 1, Column: 1, Message: "x"})
	}
	lines := strings.Split(many.Err().Error(), "\n")
	if len(lines) != maxListed+1 || lines[maxListed] != "f.yml: and 5 more errors" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestReportCovers(t *testing.T) {
	r := NewReport("f.yml", nil, Errors{{Field: "stages[0].actions[1]"}, {Field: "mode"}})
	cases := map[string]bool{
		"stages[0].actions[1]":       true,
		"stages[0].actions[1].name":  true,
		"stages[0].actions[1].env.A": true,
		"stages[0].actions[1][0]":    true,
		"stages[0].actions[10].name": false,
		"stages[0]":                  false,
		"modes":                      false,
		"mode":                       true,
	}
	for field, want := range cases {
		if got := r.covers(field); got != want {
			t.Errorf("covers(%q) = %v, want %v", field, got, want)
		}
	}
	if !NewReport("f.yml", nil, Errors{{Message: "must be a mapping"}}).covers("anything") {
		t.Error("an error about the whole document covers every field")
	}
	if NewReport("f.yml", nil, nil).covers("") {
		t.Error("no error covers nothing")
	}
}

// TestReportSuggestsWhileListed: past the problems a message lists, no
// candidates are asked for.
func TestReportSuggestsWhileListed(t *testing.T) {
	r := NewReport("f.yml", &yaml.Node{}, nil)
	asked := 0
	cands := func() []string { asked++; return []string{"build"} }
	if got := r.Unknown("x", "biuld", cands, ""); got != "x; did you mean build?" || asked != 1 {
		t.Fatalf("%q, asked %d", got, asked)
	}
	for range maxListed {
		r.Addf(nil, "x")
	}
	if got := r.Unknown("x", "biuld", cands, "use build"); got != "x; use build" || asked != 1 {
		t.Fatalf("%q, asked %d", got, asked)
	}
}

// TestDecodeReportsEveryWrongKeyAndValue: one pass reports each wrong key
// and value, and the values that were right are still decoded, so the
// caller can check their meaning in the same pass.
func TestDecodeReportsEveryWrongKeyAndValue(t *testing.T) {
	var d testDoc
	doc, err := Decode("f.yml", []byte("name: app\ncont: 3\nratio: half\nlevel: medium\nenv: {A: 1, B: [x]}\nitems:\n  - id: 1\n  - idd: 2\n  - id: x\n"), &d)
	want := []string{
		`f.yml:2:1: cont: unknown key "cont"; did you mean count? (allowed here: name, count, size, ratio, enabled, level, env, items)`,
		`f.yml:3:8: ratio: must be a number, not "half"`,
		`f.yml:4:8: level: "medium" must be low or high`,
		`f.yml:5:16: env.B: must be a single value, not a list`,
		`f.yml:8:5: items[1].idd: unknown key "idd"; did you mean id? (allowed here: id)`,
		`f.yml:9:9: items[2].id: must be a whole number, not "x"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	if doc == nil || d.Name != "app" || d.Env["A"] != "1" || len(d.Items) != 3 || d.Items[0].ID != 1 || d.Ratio != 0 || d.Level != "" {
		t.Fatalf("the right values were not decoded: %v %+v", doc, d)
	}
	for _, bad := range []string{"", "a: [\n", "- 1\n- 2\n"} {
		var d testDoc
		doc, err := Decode("f.yml", []byte(bad), &d)
		var l Errors
		if !errors.As(err, &l) || len(l) != 1 {
			t.Errorf("%q: %v, want one error", bad, err)
		}
		if bad != "- 1\n- 2\n" && doc != nil {
			t.Errorf("%q: a document for a file that is not one", bad)
		}
	}
}

// TestReportDropsWhatFollowsFromARefusedValue: a value Decode refused is
// zero afterwards; what a caller finds wrong with that zero is not news.
func TestReportDropsWhatFollowsFromARefusedValue(t *testing.T) {
	type item struct {
		Name string `yaml:"name"`
	}
	var doc struct {
		Items []item `yaml:"items"`
		Mode  string `yaml:"mode"`
	}
	n, err := Decode("f.yml", []byte("items:\n  - name: [a]\n  - {}\n  - nme: x\nmode: x\n"), &doc)
	if n == nil {
		t.Fatal(err)
	}
	r := NewReport("f.yml", n, err)
	for i, it := range doc.Items {
		if it.Name == "" {
			r.Addf([]any{"items", i, "name"}, "every item needs a name")
		}
	}
	r.Addf([]any{"mode"}, "%q is not a mode", doc.Mode)
	r.Addf([]any{"missing", 3, "x"}, "a key the file lacks is placed at what holds it")
	want := strings.Join([]string{
		`f.yml:1:1: missing[3].x: a key the file lacks is placed at what holds it`,
		`f.yml:2:11: items[0].name: must be a single value, not a list`,
		`f.yml:3:5: items[1].name: every item needs a name`,
		`f.yml:4:5: items[2].nme: unknown key "nme"; did you mean name? (allowed here: name)`,
		`f.yml:4:5: items[2].name: every item needs a name`,
		`f.yml:5:7: mode: "x" is not a mode`,
	}, "\n")
	if got := r.Err(); got == nil || got.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", got, want)
	}
}

func TestFieldOf(t *testing.T) {
	if got := FieldOf("stages", 0, "actions", 12, "env", "A.B"); got != "stages[0].actions[12].env.A.B" {
		t.Fatal(got)
	}
	if got := FieldOf(); got != "" {
		t.Fatal(got)
	}
}

// TestDecodeKeepsTheIndexesOfARefusedItem: a refused list item is left
// zero in its place, so later items keep the index the file gives them.
func TestDecodeKeepsTheIndexesOfARefusedItem(t *testing.T) {
	type item struct {
		ID int `yaml:"id"`
	}
	var doc struct {
		Items  []item    `yaml:"items"`
		Ptrs   []*item   `yaml:"ptrs"`
		Names  []string  `yaml:"names"`
		Counts []int     `yaml:"counts"`
		Flags  []bool    `yaml:"flags"`
		Ratios []float64 `yaml:"ratios"`
	}
	_, err := Decode("f.yml", []byte("items: [{id: 1}, [x], {id: 3}]\nptrs: [{id: 1}, [x], {id: 3}]\nnames: [a, {b: c}, d]\ncounts: [1, x, 3]\nflags: [true, [x], true]\nratios: [0.5, x, 2]\n"), &doc)
	var l Errors
	if !errors.As(err, &l) || len(l) != 6 {
		t.Fatalf("want 6 errors, got %v", err)
	}
	if len(doc.Items) != 3 || doc.Items[1].ID != 0 || doc.Items[2].ID != 3 {
		t.Errorf("items %+v", doc.Items)
	}
	if len(doc.Ptrs) != 3 || doc.Ptrs[1] != nil || doc.Ptrs[2].ID != 3 {
		t.Errorf("ptrs %+v", doc.Ptrs)
	}
	if len(doc.Names) != 3 || doc.Names[1] != "" || doc.Names[2] != "d" {
		t.Errorf("names %q", doc.Names)
	}
	if len(doc.Counts) != 3 || doc.Counts[2] != 3 || len(doc.Flags) != 3 || doc.Flags[1] || len(doc.Ratios) != 3 || doc.Ratios[2] != 2 {
		t.Errorf("counts %v flags %v ratios %v", doc.Counts, doc.Flags, doc.Ratios)
	}
}
