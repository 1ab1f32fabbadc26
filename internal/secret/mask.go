package secret

import (
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// Mask replaces secret values in logs.
const Mask = "***"

// minMask is the shortest value masked: masking shorter ones (and their
// encodings) would garble ordinary text.
const minMask = 4

// encodings are the base64 flavours a build commonly prints a value in
// (auth headers, Kubernetes manifests, JWT-style tokens).
var encodings = []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}

// Forms lists every string Masker replaces for these secrets, longest
// first: each value; each line of a multi-line value, as programs print
// them line by line; and of each of those its base64 (standard and URL
// alphabets, with and without padding) and its query- and path-escaped
// forms. Values under four bytes are left out.
//
// Not covered: a value base64-encoded inside a longer string (a
// "user:value" basic-auth pair, a base64'd JSON or docker config), whose
// characters depend on the value's offset modulo three and on its
// neighbours; other encodings (hex, double escaping); and a value the
// program transforms or prints with characters between its bytes.
func Forms(secrets []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if len(s) >= minMask && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range secrets {
		values := []string{s}
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.Split(s, "\n") {
				values = append(values, strings.TrimRight(line, "\r"))
			}
		}
		for _, v := range values {
			if len(v) < minMask {
				continue
			}
			add(v)
			for _, enc := range encodings {
				add(enc.EncodeToString([]byte(v)))
			}
			add(url.QueryEscape(v))
			add(url.PathEscape(v))
		}
	}
	// Longest first so no part of a longer form survives a shorter one's
	// replacement (a padded base64 before the unpadded one it starts with).
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// Masker replaces every form of the secrets (see Forms) with Mask. Nil
// when there is nothing to mask.
func Masker(secrets []string) *strings.Replacer {
	forms := Forms(secrets)
	if len(forms) == 0 {
		return nil
	}
	args := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		args = append(args, f, Mask)
	}
	return strings.NewReplacer(args...)
}
