package workflow

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/rhysd/actionlint"
)

// stdinName is the path actionlint's Linter.Lint treats as "not a file": for
// any other path it stats the path and, when it exists, looks for the
// repository around it and reads its .github/actionlint.yaml. Passing this name
// (and a nil project) keeps the linter off the file system.
const stdinName = "<stdin>"

// runnerLabels are the runs-on labels Slipway accepts (the engine checks them
// when a job runs). actionlint knows all of them but "slipway".
var runnerLabels = []string{"ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04", "linux", "x64", "self-hosted", "slipway"}

// lint runs actionlint over data and returns its findings as Errors.
func lint(file string, data []byte) Errors {
	cfg := &actionlint.Config{}
	cfg.SelfHostedRunner.Labels = []string{"slipway"}

	opts := &actionlint.LinterOptions{
		// Empty executables disable the shellcheck and pyflakes rules: with
		// them empty the linter never creates those rules, so it never looks
		// up or starts a program (only the actionlint command defaults them to
		// "shellcheck" and "pyflakes", looked up on $PATH).
		Shellcheck: "",
		Pyflakes:   "",
		// No ConfigFile: the configuration is set on the rules below instead
		// of being read from disk.
		ConfigFile: "",
		LogWriter:  io.Discard,
		Oneline:    true,
		// Any non-empty value: keeps NewLinter from calling os.Getwd. With a
		// nil project the working directory is never used to find files.
		WorkingDir: ".",
		// Color stays ColorOptionKindAuto on purpose: with an output that is
		// not an *os.File it leaves fatih/color's process-wide NoColor alone,
		// whereas ColorOptionKindNever would write that global on every call.
		OnRulesCreated: func(rules []actionlint.Rule) []actionlint.Rule {
			kept := rules[:0]
			for _, r := range rules {
				switch r.Name() {
				case "shellcheck", "pyflakes": // belt and braces: never run programs
					continue
				}
				r.SetConfig(cfg)
				kept = append(kept, r)
			}
			return kept
		},
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		return Errors{{File: file, Line: 1, Col: 1, Msg: "cannot validate the workflow: " + err.Error()}}
	}
	found, err := l.Lint(stdinName, data, nil)
	if err != nil {
		return Errors{{File: file, Line: 1, Col: 1, Msg: "cannot validate the workflow: " + err.Error()}}
	}
	var errs Errors
	for _, f := range found {
		msg, keep := rewrite(f)
		if !keep {
			continue
		}
		errs = append(errs, &Error{File: file, Line: max(f.Line, 1), Col: max(f.Column, 1), Msg: msg})
	}
	return errs
}

var (
	unknownLabel   = regexp.MustCompile(`^label ("(?:[^"\\]|\\.)*") is unknown\. `)
	conflictLabels = regexp.MustCompile(`^label ("(?:[^"\\]|\\.)*") conflicts with label ("(?:[^"\\]|\\.)*") defined at `)
)

// rewrite adapts an actionlint finding to Slipway: it drops runner label
// conflicts between labels Slipway treats alike and replaces advice about
// actionlint's configuration file, which Slipway does not read.
func rewrite(e *actionlint.Error) (string, bool) {
	msg := e.Message
	switch {
	case e.Kind == "deprecated-commands":
		// GitHub still runs ::set-output and the rest (with a warning);
		// Slipway runs them too, so files move over unchanged.
		return "", false
	case e.Kind == "action" && strings.Contains(msg, "is too old to run on GitHub Actions"):
		// Slipway runs its own built-in action for any version tag.
		return "", false
	case e.Kind != "runner-label":
		return msg, true
	}
	if m := conflictLabels.FindStringSubmatch(msg); m != nil {
		// e.g. ubuntu-latest with ubuntu-22.04: both name the same Slipway executor.
		if acceptedLabel(unquote(m[1])) && acceptedLabel(unquote(m[2])) {
			return "", false
		}
		return msg, true
	}
	if m := unknownLabel.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("label %s is unknown. Slipway runs jobs on the labels %s: fix the label if it is a typo",
			m[1], quoteAll(runnerLabels)), true
	}
	return msg, true
}

func acceptedLabel(l string) bool {
	for _, a := range runnerLabels {
		if strings.EqualFold(a, l) {
			return true
		}
	}
	return false
}

func unquote(q string) string {
	s, err := strconv.Unquote(q)
	if err != nil {
		return strings.Trim(q, `"`)
	}
	return s
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
