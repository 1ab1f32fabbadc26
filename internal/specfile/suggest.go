package specfile

import (
	"fmt"
	"strings"
)

// Suggest returns the candidate closest to name, compared without regard
// to case, when it is close enough to be what was meant: at most one edit
// (a letter added, dropped, changed, or two swapped) for every three
// letters of name, and at least one. It returns "" when none is, or when
// name is itself a candidate.
func Suggest(name string, candidates []string) string {
	if name == "" {
		return ""
	}
	a := []rune(strings.ToLower(name))
	limit := max(1, len(a)/3)
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if c == name {
			return ""
		}
		b := []rune(strings.ToLower(c))
		// The length difference is a floor on the distance: skip the
		// work for a candidate it already rules out, as a long value
		// would otherwise cost its length times each candidate's.
		if c == "" || abs(len(a)-len(b)) >= bestDist {
			continue
		}
		if d := distance(a, b); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Unknown is the message about name, which is none of candidates:
// problem, then the closest candidate if one is close, then allowed (what
// is allowed; it may be empty).
func Unknown(problem, name string, candidates []string, allowed string) string {
	s := Suggest(name, candidates)
	switch {
	case s != "" && allowed != "":
		return fmt.Sprintf("%s; did you mean %s? (%s)", problem, s, allowed)
	case s != "":
		return fmt.Sprintf("%s; did you mean %s?", problem, s)
	case allowed != "":
		return problem + "; " + allowed
	}
	return problem
}

// distance is the optimal string alignment distance: Levenshtein's, with a
// swap of two neighbouring letters counting as one edit, as typing makes it.
func distance(a, b []rune) int {
	prev2 := make([]int, len(b)+1) // row i-2
	prev := make([]int, len(b)+1)  // row i-1
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
