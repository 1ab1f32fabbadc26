package source

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what CommitInfo returns: a subject is a line of a list, not
// the commit's whole message.
const (
	MaxSubjectRunes = 120
	MaxAuthorRunes  = 80
)

// CommitInfo returns a commit's subject (its message's first line) and
// its author's name, as people recognise a commit in a list. Both are
// valid UTF-8 without control characters, cut to MaxSubjectRunes and
// MaxAuthorRunes (an ellipsis marks the cut). commit must be a full SHA.
func (s *Service) CommitInfo(ctx context.Context, app, commit string) (subject, author string, err error) {
	if !ValidAppName(app) {
		return "", "", fmt.Errorf("app %q is not an app name", app)
	}
	if !fullSHA(commit) {
		return "", "", fmt.Errorf("commit %q is not a full SHA", commit)
	}
	// %x00 separates the two: a name or subject never holds a NUL.
	out, err := s.git(ctx, app, "show", "-s", "--no-notes", "--no-show-signature", "--format=%an%x00%s", commit+"^{commit}")
	if err != nil {
		return "", "", err
	}
	name, subj, ok := bytes.Cut(bytes.TrimRight(out, "\n"), []byte{0})
	if !ok {
		return "", "", fmt.Errorf("git show %s: unexpected output", short(commit))
	}
	return oneLine(string(subj), MaxSubjectRunes), oneLine(string(name), MaxAuthorRunes), nil
}

// fullSHA reports a full SHA-1 or SHA-256 object name in lower case.
func fullSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// oneLine makes text safe to show on one line: invalid UTF-8 and control
// characters become spaces, runs of spaces one, and text longer than max
// runes is cut with an ellipsis.
func oneLine(text string, max int) string {
	text = strings.ToValidUTF8(text, " ")
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, text)
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= max {
		return text
	}
	runes := []rune(text)
	return strings.TrimRight(string(runes[:max-1]), " ") + "…"
}
