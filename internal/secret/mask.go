package secret

import (
	"sort"
	"strings"
)

// Mask replaces secret values in logs.
const Mask = "***"

// Masker replaces each secret, and each line of a multi-line secret (as
// programs print them line by line), longest first so no part of a longer
// secret survives a shorter one's replacement. Values under four bytes are
// left alone: masking them would garble ordinary text. Nil when there is
// nothing to mask.
func Masker(secrets []string) *strings.Replacer {
	var parts []string
	for _, s := range secrets {
		for _, p := range strings.Split(s, "\n") {
			if p = strings.TrimRight(p, "\r"); len(p) >= 4 {
				parts = append(parts, p)
			}
		}
	}
	if len(parts) == 0 {
		return nil
	}
	sort.Slice(parts, func(i, j int) bool { return len(parts[i]) > len(parts[j]) })
	args := make([]string, 0, 2*len(parts))
	for _, p := range parts {
		args = append(args, p, Mask)
	}
	return strings.NewReplacer(args...)
}
