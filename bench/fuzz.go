package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// fuzz runs every fuzz target in the module, each for -fuzztime (10s
// unless set; "1000x" counts runs instead), one after another, and fails if
// any target finds a failing input:
//
//	go run ./bench fuzz [-fuzztime 30s]
//
// It is not a measurement, so it runs only when named, never as part of
// the whole suite. A failing input is kept where go test puts it, in the
// package's testdata/fuzz, to be replayed by a plain go test.
func init() {
	if slices.Contains(os.Args[1:], "fuzz") {
		benches = append(benches, bench{name: "fuzz", run: fuzzAll})
	}
}

// fuzzTarget is one func FuzzXxx(*testing.F) in a package directory.
type fuzzTarget struct {
	name, dir, pkg string
}

type fuzzResult struct {
	Target  string  `json:"target"`
	Package string  `json:"package"`
	Result  string  `json:"result"`
	Seconds float64 `json:"seconds"`
}

func fuzzAll(*env) (map[string]any, string, error) { return runFuzz(os.Args[1:], ".", os.Stderr) }

// runFuzz runs the fuzz targets of the module at root, with -fuzztime
// from args, writing progress and a summary to log.
func runFuzz(args []string, root string, log io.Writer) (map[string]any, string, error) {
	fuzztime, err := fuzzTimeFlag(args)
	if err != nil {
		return nil, "", err
	}
	targets, err := findFuzzTargets(root)
	if err != nil {
		return nil, "", err
	}
	if len(targets) == 0 {
		return nil, "", errors.New("no fuzz targets found; run from the module root")
	}
	var results []fuzzResult
	var failed []string
	for i, t := range targets {
		fmt.Fprintf(log, "fuzz [%d/%d] %s in %s for %s ...\n", i+1, len(targets), t.name, t.pkg, fuzztime)
		start := time.Now()
		// -run ^$: the package's other tests are not this command's business.
		cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+t.name+"$", "-fuzztime", fuzztime, "./"+filepath.ToSlash(t.dir))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		r := fuzzResult{Target: t.name, Package: t.pkg, Result: "ok", Seconds: time.Since(start).Round(100 * time.Millisecond).Seconds()}
		if err != nil {
			r.Result = "FAIL"
			failed = append(failed, t.pkg+"."+t.name)
			log.Write(lastLines(out, 40))
		}
		fmt.Fprintf(log, "fuzz [%d/%d] %s in %s: %s (%.1fs)\n", i+1, len(targets), t.name, t.pkg, r.Result, r.Seconds)
		results = append(results, r)
	}
	fmt.Fprintf(log, "\n%-24s %-52s %s\n", "TARGET", "PACKAGE", "RESULT")
	for _, r := range results {
		fmt.Fprintf(log, "%-24s %-52s %s\n", r.Target, r.Package, r.Result)
	}
	figures := map[string]any{"fuzztime": fuzztime, "targets": len(targets), "failed": len(failed), "results": results}
	summary := fmt.Sprintf("%d fuzz targets, %s each, %d failed", len(targets), fuzztime, len(failed))
	if len(failed) > 0 {
		return figures, summary, fmt.Errorf("%s; failing inputs are under each package's testdata/fuzz", strings.Join(failed, ", "))
	}
	return figures, summary, nil
}

// fuzzTimeFlag reads -fuzztime (or --fuzztime, with a space or "=")
// from the command line main also reads its benchmark names from.
func fuzzTimeFlag(args []string) (string, error) {
	v := "10s"
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-"), "=")
		if !strings.HasPrefix(args[i], "-") || name != "fuzztime" {
			continue
		}
		if !hasVal {
			if i+1 == len(args) {
				return "", errors.New("-fuzztime needs a value such as 30s or 1000x")
			}
			i++
			val = args[i]
		}
		v = val
	}
	if !validFuzzTime(v) {
		return "", fmt.Errorf("-fuzztime %q is neither a duration such as 30s nor a count such as 1000x", v)
	}
	return v, nil
}

var runCountRE = regexp.MustCompile(`^[1-9][0-9]*x$`)

func validFuzzTime(v string) bool {
	if runCountRE.MatchString(v) {
		return true
	}
	d, err := time.ParseDuration(v)
	return err == nil && d > 0
}

// findFuzzTargets lists the fuzz targets under root, the module root, by
// parsing the test files a plain go test would build (build constraints
// and _GOOS suffixes apply): a grep would also find ones in comments.
func findFuzzTargets(root string) ([]fuzzTarget, error) {
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	var targets []fuzzTarget
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			// As go ./... does: testdata, vendor and dot or underscore directories hold no packages.
			if p != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		dir := filepath.Dir(p)
		if ok, err := build.Default.MatchFile(dir, name); err != nil || !ok {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, dir)
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		for _, decl := range f.Decls {
			if name, ok := fuzzFunc(decl); ok {
				targets = append(targets, fuzzTarget{name: name, dir: rel, pkg: pkg})
			}
		}
		return nil
	})
	return targets, err
}

// fuzzFunc says whether decl is a fuzz target as go test sees one: a
// func FuzzXxx(f *testing.F), Xxx not starting with a lower-case letter.
func fuzzFunc(decl ast.Decl) (string, bool) {
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") {
		return "", false
	}
	if r, _ := utf8.DecodeRuneInString(fn.Name.Name[len("Fuzz"):]); unicode.IsLower(r) {
		return "", false
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return "", false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return "", false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "F" {
		return "", false
	}
	return fn.Name.Name, true
}

// modulePath reads the module line of go.mod.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("%w; run from the module root", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no module line", gomod)
}

// lastLines is the end of go test's output, which holds the failure and
// where the failing input was written.
func lastLines(out []byte, n int) []byte {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}
