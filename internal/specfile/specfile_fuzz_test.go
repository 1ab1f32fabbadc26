package specfile

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzGlob: Glob never panics, accepts every valid UTF-8 glob and refuses
// every other, and the regexp it returns matches what the glob means:
// literal characters, multi-byte ones included, stand for themselves, "*"
// matches any run of characters but "/", and "?" is exactly one character,
// however many bytes that character takes.
func FuzzGlob(f *testing.F) {
	for _, seed := range [][2]string{
		{"*.go", "x"}, {"src/**", "x"}, {"**/*.md", "é"}, {"dóc/*.md", "日"},
		{"日本/**", "語"}, {"d?c", "ó"}, {"??", "🚀"}, {"a.b+c(d)[e]{f}|^$\\", "x"},
		{"src/**", "a\nb"}, {"\xff", "x"}, {"a/\xc3", "\xc3"}, {"***/?", "\U0010FFFF"}, {"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, glob, sample string) {
		re, err := Glob(glob)
		if !utf8.ValidString(glob) {
			if err == nil {
				t.Fatalf("Glob(%q) accepted invalid UTF-8", glob)
			}
			return
		}
		if err != nil || re == nil {
			t.Fatalf("Glob(%q): %v", glob, err)
		}
		// one is a character "?" must match: the sample's first, unless
		// that is one "?" cannot match.
		one := 'x'
		if r, _ := utf8.DecodeRuneInString(sample); r != utf8.RuneError && r != '/' && r != '\n' {
			one = r
		}
		// star is what each "*" matches: the sample without its slashes,
		// newlines and invalid bytes included.
		star := strings.ReplaceAll(sample, "/", "")
		witness := func(q string) string {
			return strings.NewReplacer("*", star, "?", q).Replace(glob)
		}
		if w := witness(string(one)); !re.MatchString(w) {
			t.Fatalf("Glob(%q) = %s does not match %q", glob, re, w)
		}
		if strings.Contains(glob, "?") && !strings.Contains(glob, "*") {
			if w := witness(string(one) + string(one)); re.MatchString(w) {
				t.Fatalf("Glob(%q) = %s matches %q: \"?\" took two characters", glob, re, w)
			}
		}
	})
}
