package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFuzzTimeFlag(t *testing.T) {
	cases := []struct {
		args []string
		want string
		err  bool
	}{
		{[]string{"fuzz"}, "10s", false},
		{[]string{"fuzz", "-fuzztime", "2s"}, "2s", false},
		{[]string{"-fuzztime=1m", "fuzz"}, "1m", false},
		{[]string{"fuzz", "--fuzztime", "500x"}, "500x", false},
		{[]string{"fuzz", "-fuzztime"}, "", true},
		{[]string{"fuzz", "-fuzztime", "soon"}, "", true},
		{[]string{"fuzz", "-fuzztime", "0x"}, "", true},
		{[]string{"fuzz", "-fuzztime", "-1s"}, "", true},
		{[]string{"fuzztime", "fuzz"}, "10s", false}, // not a flag: a benchmark name
	}
	for _, c := range cases {
		got, err := fuzzTimeFlag(c.args)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("fuzzTimeFlag(%q) = %q, %v; want %q, error %v", c.args, got, err, c.want, c.err)
		}
	}
}

// writeModule makes a module at a temporary directory from path → content.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files["go.mod"] = "module example.com/m\n\ngo 1.24\n"
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindFuzzTargets(t *testing.T) {
	root := writeModule(t, map[string]string{
		"a.go": "package m\n",
		"a_test.go": "package m\n\nimport \"testing\"\n\n" +
			"func FuzzOne(f *testing.F) {}\n" +
			"func Fuzzlower(f *testing.F) {}\n" + // go test does not run it
			"func FuzzNotF(t *testing.T) {}\n" +
			"type x struct{}\n\nfunc (x) FuzzMethod(f *testing.F) {}\n" +
			"// func FuzzInComment(f *testing.F) {}\n",
		"ignored_test.go":    "//go:build ignore\n\npackage m\n\nimport \"testing\"\n\nfunc FuzzIgnored(f *testing.F) {}\n",
		"testdata/x_test.go": "package x\n\nimport \"testing\"\n\nfunc FuzzTestdata(f *testing.F) {}\n",
		".hidden/h_test.go":  "package h\n\nimport \"testing\"\n\nfunc FuzzHidden(f *testing.F) {}\n",
		"sub/deep/b_test.go": "package deep\n\nimport \"testing\"\n\nfunc FuzzSub(f *testing.F) {}\n",
		"sub/deep/fuzz.go":   "package deep\n\nimport \"testing\"\n\nfunc FuzzNotATest(f *testing.F) {}\n",
	})
	targets, err := findFuzzTargets(root)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(targets)
	want := fmt.Sprint([]fuzzTarget{{"FuzzOne", ".", "example.com/m"}, {"FuzzSub", filepath.Join("sub", "deep"), "example.com/m/sub/deep"}})
	if got != want {
		t.Fatalf("found %s, want %s", got, want)
	}
}

// TestRunFuzzReportsFailure runs go test on a small module: a target that
// fails makes the run fail and is named in the summary.
func TestRunFuzzReportsFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	root := writeModule(t, map[string]string{
		"good/good_test.go": "package good\n\nimport \"testing\"\n\nfunc FuzzGood(f *testing.F) {\n\tf.Add(1)\n\tf.Fuzz(func(t *testing.T, i int) {})\n}\n",
		"bad/bad_test.go":   "package bad\n\nimport \"testing\"\n\nfunc FuzzBad(f *testing.F) {\n\tf.Add(1)\n\tf.Fuzz(func(t *testing.T, i int) { t.Fatal(\"boom\") })\n}\n",
	})
	var log bytes.Buffer
	figures, summary, err := runFuzz([]string{"fuzz", "-fuzztime", "1x"}, root, &log)
	if err == nil || !strings.Contains(err.Error(), "example.com/m/bad.FuzzBad") || strings.Contains(err.Error(), "FuzzGood") {
		t.Fatalf("error %v; log:\n%s", err, &log)
	}
	if figures["failed"] != 1 || figures["targets"] != 2 || summary != "2 fuzz targets, 1x each, 1 failed" {
		t.Fatalf("figures %v, summary %q", figures, summary)
	}
	for _, want := range []string{"boom", "FuzzGood                 example.com/m/good", "ok", "FAIL"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not contain %q:\n%s", want, &log)
		}
	}
}
