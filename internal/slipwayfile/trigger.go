package slipwayfile

import (
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/internal/specfile"
)

// Decision says whether a push starts a run, and why not when it does not.
type Decision struct {
	Run    bool
	Reason string
}

// MatchPush applies on.push to a pushed ref and the paths it changed. Like
// GitHub Actions: with only branches set, tags start nothing (and the reverse);
// with neither, every branch and tag starts a run; paths apply to branches only.
func (s *Spec) MatchPush(ref string, changed []string) Decision {
	p := s.On.Push
	if p == nil {
		return Decision{Reason: "slipway.yaml has no on.push trigger"}
	}
	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		if len(p.Tags) == 0 {
			if len(p.Branches) > 0 {
				return Decision{Reason: fmt.Sprintf("tag %s: on.push lists branches only", name)}
			}
			return Decision{Run: true}
		}
		if !matchAny(p.Tags, name) {
			return Decision{Reason: fmt.Sprintf("tag %s matches no on.push.tags pattern", name)}
		}
		return Decision{Run: true}
	}
	name, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return Decision{Reason: fmt.Sprintf("ref %s is neither a branch nor a tag", ref)}
	}
	if len(p.Branches) == 0 && len(p.Tags) > 0 {
		return Decision{Reason: fmt.Sprintf("branch %s: on.push lists tags only", name)}
	}
	if len(p.Branches) > 0 && !matchAny(p.Branches, name) {
		return Decision{Reason: fmt.Sprintf("branch %s matches no on.push.branches pattern", name)}
	}
	if len(p.Paths) > 0 {
		for _, c := range changed {
			if matchAny(p.Paths, c) {
				return Decision{Run: true}
			}
		}
		return Decision{Reason: fmt.Sprintf("none of the %d changed files matches on.push.paths", len(changed))}
	}
	return Decision{Run: true}
}

// matchAny evaluates patterns in order; a later "!pattern" can exclude what
// an earlier one included, as in GitHub Actions filters.
func matchAny(patterns []string, s string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		re, err := specfile.Glob(strings.TrimPrefix(p, "!"))
		if err != nil {
			continue
		}
		if re.MatchString(s) {
			matched = !neg
		}
	}
	return matched
}
