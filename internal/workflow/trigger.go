package workflow

import (
	"fmt"
	"regexp"
	"strings"
)

// MatchPush applies on.push to a pushed ref ("refs/heads/main", "refs/tags/v1")
// and the changed paths.
//
// GitHub's rules: branches/branches-ignore apply to branch pushes, tags/tags-ignore
// to tag pushes; with only branches filters set, tag pushes start nothing, and with
// only tags filters set, branch pushes start nothing; with neither, every branch and
// tag matches. paths/paths-ignore apply to branch pushes and, as GitHub does, are
// ignored for tag pushes. With paths set, at least one changed file must match;
// with paths-ignore set, at least one changed file must not be ignored. So a push
// that changed no files (changed is nil or empty) does not run a workflow with
// path filters, as on GitHub ("If there are no files changed, the workflow will
// not run"). A caller that cannot compute the changed files must decide itself
// (GitHub runs the workflow then).
//
// Patterns use GitHub's filter pattern syntax: * (any characters but /),
// ** (any characters), ? (zero or one of the preceding character),
// + (one or more of the preceding character), [] (one character of a set or a
// range), \ to escape, and a leading ! negating the pattern; the patterns of a
// filter are evaluated in order and the last one matching decides.
//
// reason says why not (naming the filter), "" when run is true.
func (w *Workflow) MatchPush(ref string, changed []string) (run bool, reason string) {
	f := w.Push
	if f == nil {
		return false, "on.push is not set"
	}
	branchFilters := f.Branches != nil || f.BranchesIgnore != nil
	tagFilters := f.Tags != nil || f.TagsIgnore != nil

	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		if branchFilters && !tagFilters {
			return false, fmt.Sprintf("tag %q: on.push sets only branch filters (branches/branches-ignore), so tag pushes do not start this workflow", name)
		}
		if f.Tags != nil && !matchPatterns(f.Tags, name) {
			return false, fmt.Sprintf("tag %q matches no pattern of on.push.tags", name)
		}
		if f.TagsIgnore != nil && matchPatterns(f.TagsIgnore, name) {
			return false, fmt.Sprintf("tag %q is ignored by on.push.tags-ignore", name)
		}
		return true, "" // path filters are not evaluated for tags
	}

	name, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return false, fmt.Sprintf("ref %q is neither a branch (refs/heads/...) nor a tag (refs/tags/...)", ref)
	}
	if tagFilters && !branchFilters {
		return false, fmt.Sprintf("branch %q: on.push sets only tag filters (tags/tags-ignore), so branch pushes do not start this workflow", name)
	}
	if f.Branches != nil && !matchPatterns(f.Branches, name) {
		return false, fmt.Sprintf("branch %q matches no pattern of on.push.branches", name)
	}
	if f.BranchesIgnore != nil && matchPatterns(f.BranchesIgnore, name) {
		return false, fmt.Sprintf("branch %q is ignored by on.push.branches-ignore", name)
	}
	if f.Paths != nil {
		if len(changed) == 0 {
			return false, "the push changed no files, so none matches on.push.paths"
		}
		if !anyPath(changed, func(p string) bool { return matchPatterns(f.Paths, p) }) {
			return false, "no changed file matches on.push.paths"
		}
	}
	if f.PathsIgnore != nil {
		if len(changed) == 0 {
			return false, "the push changed no files, so none is left after on.push.paths-ignore"
		}
		if !anyPath(changed, func(p string) bool { return !matchPatterns(f.PathsIgnore, p) }) {
			return false, "every changed file is ignored by on.push.paths-ignore"
		}
	}
	return true, ""
}

func anyPath(paths []string, ok func(string) bool) bool {
	for _, p := range paths {
		if ok(p) {
			return true
		}
	}
	return false
}

// matchPatterns evaluates a filter's patterns in order: a matching pattern
// includes s, a matching !pattern excludes it again; the last match wins.
func matchPatterns(patterns []string, s string) bool {
	in := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if compilePattern(p).MatchString(s) {
			in = !neg
		}
	}
	return in
}

// compilePattern translates a filter pattern (without its leading !) into an
// anchored regular expression.
func compilePattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`\A`)
	rs := []rune(p)
	quantifiable := false // whether the previous item can take ? or +
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '\\':
			if i+1 < len(rs) && strings.ContainsRune(`[]?*+\!`, rs[i+1]) {
				i++
				r = rs[i]
			}
			b.WriteString(regexp.QuoteMeta(string(r)))
			quantifiable = true
		case '*':
			if i+1 < len(rs) && rs[i+1] == '*' {
				i++
				// "**/" at the start or after a slash also matches no directory at all:
				// docs/**/*.md matches docs/a.md.
				if i+1 < len(rs) && rs[i+1] == '/' && (i == 1 || rs[i-2] == '/') {
					i++
					b.WriteString(`(?:.*/)?`)
				} else {
					b.WriteString(`.*`)
				}
			} else {
				b.WriteString(`[^/]*`)
			}
			quantifiable = false
		case '?', '+':
			if quantifiable {
				b.WriteRune(r)
				quantifiable = false
			} else {
				b.WriteString(regexp.QuoteMeta(string(r)))
				quantifiable = true
			}
		case '[':
			end := -1
			for k := i + 1; k < len(rs); k++ {
				if rs[k] == ']' && k > i+1 {
					end = k
					break
				}
			}
			if end < 0 {
				b.WriteString(`\[`)
				quantifiable = true
				continue
			}
			b.WriteByte('[')
			for k := i + 1; k < end; k++ {
				c := rs[k]
				if c == '-' && k > i+1 && k < end-1 {
					b.WriteByte('-') // a range such as 0-9
					continue
				}
				if strings.ContainsRune(`\]^-[`, c) {
					b.WriteByte('\\')
				}
				b.WriteRune(c)
			}
			b.WriteByte(']')
			i = end
			quantifiable = true
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
			quantifiable = true
		}
	}
	b.WriteString(`\z`)
	re, err := regexp.Compile(b.String())
	if err != nil { // e.g. a reversed range such as [9-0]: match the pattern literally
		return regexp.MustCompile(`\A` + regexp.QuoteMeta(p) + `\z`)
	}
	return re
}
