package specfile

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// level refuses anything but low or high, as a type with its own rules does.
type level string

func (l *level) UnmarshalYAML(n *yaml.Node) error {
	if n.Value != "low" && n.Value != "high" {
		return fmt.Errorf("%q must be low or high", n.Value)
	}
	*l = level(n.Value)
	return nil
}

type testDoc struct {
	Name    string            `yaml:"name"`
	Count   int               `yaml:"count"`
	Size    uint              `yaml:"size"`
	Ratio   float64           `yaml:"ratio"`
	Enabled bool              `yaml:"enabled"`
	Level   level             `yaml:"level"`
	Env     map[string]string `yaml:"env"`
	Items   []struct {
		ID int `yaml:"id"`
	} `yaml:"items"`
}

func TestDecodeNamesTheFieldOfAWrongValue(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"count: many\n", `f.yml:1:8: count: must be a whole number, not "many"`},
		{"count: 1.5\n", `f.yml:1:8: count: must be a whole number, not "1.5"`},
		{"size: -1\n", `f.yml:1:7: size: must be a whole number of 0 or more, not "-1"`},
		{"ratio: half\n", `f.yml:1:8: ratio: must be a number, not "half"`},
		{"enabled: maybe\n", `f.yml:1:10: enabled: must be true or false, not "maybe"`},
		{"name: [a, b]\n", `f.yml:1:7: name: must be a single value, not a list`},
		{"level: medium\n", `f.yml:1:8: level: "medium" must be low or high`},
		{"env: [A=1]\n", `f.yml:1:6: env: must be a mapping of keys to values`},
		{"env:\n  A: {b: 1}\n", `f.yml:2:6: env.A: must be a single value, not a mapping`},
		{"items:\n  - id: 1\n  - id: x\n", `f.yml:3:9: items[1].id: must be a whole number, not "x"`},
		{"items:\n  - idd: 1\n", `f.yml:2:5: items[0].idd: unknown key "idd"; did you mean id? (allowed here: id)`},
		{"items: 3\n", `f.yml:1:8: items: must be a list`},
	}
	for _, c := range cases {
		var d testDoc
		_, err := Decode("f.yml", []byte(c.yaml), &d)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: error %v, want %s", c.yaml, err, c.want)
		}
	}
}

func TestDecodeAcceptsWellTypedValues(t *testing.T) {
	var merged struct {
		Base map[string]string `yaml:"base"`
		Env  map[string]string `yaml:"env"`
	}
	if _, err := Decode("f.yml", []byte("base: &base {A: 1}\nenv:\n  <<: *base\n  B: 2\n"), &merged); err != nil || merged.Env["A"] != "1" || merged.Env["B"] != "2" {
		t.Fatalf("merge key in a map: %v %+v", err, merged.Env)
	}
	var d testDoc
	_, err := Decode("f.yml", []byte("name: 42\ncount: 3\nsize:\nratio: 0.5\nenabled: true\nlevel: high\nenv: {A: 1}\nitems: [{id: 7}]\n"), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "42" || d.Count != 3 || d.Ratio != 0.5 || !d.Enabled || d.Level != "high" || d.Env["A"] != "1" || d.Items[0].ID != 7 {
		t.Fatalf("decoded %+v", d)
	}
}

// counted counts how often a value of it is decoded.
type counted struct{}

var decodedCounted int

func (counted) UnmarshalYAML(*yaml.Node) error { decodedCounted++; return nil }

// TestAliasesAreCheckedOnce: three lines of aliases to aliases name 27
// million values; the key check looks at each anchored node once, so such
// a file is refused by yaml's own limit at once instead of being walked.
func TestAliasesAreCheckedOnce(t *testing.T) {
	type action struct {
		Inputs []counted `yaml:"inputs"`
	}
	type stage struct {
		Actions []action `yaml:"actions"`
	}
	var doc struct {
		A      []counted `yaml:"a"`
		B      action    `yaml:"b"`
		C      stage     `yaml:"c"`
		Stages []stage   `yaml:"stages"`
	}
	list := func(item string) string { return "[" + strings.TrimSuffix(strings.Repeat(item+",", 300), ",") + "]" }
	bomb := "a: &a " + list("x") + "\nb: &b {inputs: *a}\nc: &c {actions: " + list("*b") + "}\nstages: " + list("*c") + "\n"
	decodedCounted = 0
	_, err := Decode("f.yml", []byte(bomb), &doc)
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("alias bomb: %v", err)
	}
	if decodedCounted > 1_000_000 { // yaml itself decodes some 46 000 before it gives up
		t.Fatalf("the check decoded %d values of a 3 KB file", decodedCounted)
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		glob  string
		match []string
		miss  []string
	}{
		{"*.go", []string{"main.go", ".go"}, []string{"a/main.go", "main.gox"}},
		{"src/**", []string{"src/a", "src/a/b/c.go"}, []string{"src", "lib/src/a"}},
		{"**/*.md", []string{"a.md", "docs/a.md", "a/b/c.md"}, []string{"a.mdx"}},
		{"release/**/final", []string{"release/final", "release/1/2/final"}, []string{"release/1/final2"}},
		{"v?", []string{"v1", "vé", "v日"}, []string{"v", "v10", "v/"}},
		{"a.b+c(d)[e]{f}|^$", []string{"a.b+c(d)[e]{f}|^$"}, []string{"aXb+c(d)[e]{f}|^$"}},
		{"dóc/*.md", []string{"dóc/a.md", "dóc/ñ.md"}, []string{"doc/a.md", "dóc/a/b.md", "dÃ³c/a.md"}},
		{"日本/**", []string{"日本/a", "日本/語/b.txt"}, []string{"日本", "日/本/a"}},
		{"**/über-*", []string{"über-x", "a/b/über-y"}, []string{"uber-x"}},
		{"d?c", []string{"dóc", "d日c", "dxc"}, []string{"dc", "dóóc", "d/c"}},
		{"??", []string{"日本", "éé", "ab"}, []string{"日", "日本語"}},
		{"src/**/*.go", []string{"src/new\nline/a.go"}, []string{"src/a.go\n"}},
		{"emoji-🚀-*", []string{"emoji-🚀-launch"}, []string{"emoji-?-launch"}},
	}
	for _, c := range cases {
		re, err := Glob(c.glob)
		if err != nil {
			t.Errorf("Glob(%q): %v", c.glob, err)
			continue
		}
		for _, s := range c.match {
			if !re.MatchString(s) {
				t.Errorf("Glob(%q) = %s does not match %q", c.glob, re, s)
			}
		}
		for _, s := range c.miss {
			if re.MatchString(s) {
				t.Errorf("Glob(%q) = %s matches %q", c.glob, re, s)
			}
		}
	}
}

func TestGlobRefusesInvalidUTF8(t *testing.T) {
	for _, g := range []string{"\xff", "a/\xc3", "日\x80本/*"} {
		if re, err := Glob(g); err == nil || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("Glob(%q) = %v, %v; want an error about UTF-8", g, re, err)
		}
	}
}
