package secret

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestMasker(t *testing.T) {
	// "pass>>?~secret" has bytes whose base64 differs between the standard
	// and URL alphabets (+ and / against - and _), needs padding, and has
	// characters that query and path escaping treat differently.
	const odd = "pass>>?~ s/cret"
	const pem = "-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEE\n-----END KEY-----"
	b64 := func(enc *base64.Encoding, s string) string { return enc.EncodeToString([]byte(s)) }
	cases := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"plain", []string{"hunter2-password"}, "pw=hunter2-password;", "pw=***;"},
		{"longest first", []string{"hunter2", "hunter2-password"}, "hunter2-password hunter2", "*** ***"},
		{"std base64 padded", []string{odd}, "auth " + b64(base64.StdEncoding, odd) + " end", "auth *** end"},
		{"std base64 unpadded", []string{odd}, "auth " + b64(base64.RawStdEncoding, odd) + " end", "auth *** end"},
		{"url base64 padded", []string{odd}, "t=" + b64(base64.URLEncoding, odd), "t=***"},
		{"url base64 unpadded", []string{odd}, "t=" + b64(base64.RawURLEncoding, odd), "t=***"},
		{"query escaped", []string{odd}, "GET /x?token=" + url.QueryEscape(odd) + "&a=1", "GET /x?token=***&a=1"},
		{"path escaped", []string{odd}, "GET /x/" + url.PathEscape(odd) + "/y", "GET /x/***/y"},
		{"base64 of a value with a trailing newline", []string{"token-from-file\n"}, b64(base64.StdEncoding, "token-from-file\n"), "***"},
		{"value with a trailing newline", []string{"token-from-file\n"}, "token-from-file", "***"},
		{"multi-line, line by line", []string{pem}, "-----BEGIN KEY-----", "***"},
		{"multi-line, a middle line", []string{pem}, "  DDDDEEEE", "  ***"},
		{"multi-line, CRLF", []string{strings.ReplaceAll(pem, "\n", "\r\n")}, "AAAABBBBCCCC", "***"},
		{"multi-line, whole value base64", []string{pem}, b64(base64.StdEncoding, pem), "***"},
		{"multi-line, one line base64", []string{pem}, b64(base64.StdEncoding, "AAAABBBBCCCC"), "***"},
		// Under four bytes masking would garble ordinary text, and so would
		// masking the encodings of such a value.
		{"tiny value left alone", []string{"sec"}, "a sec " + b64(base64.StdEncoding, "sec"), "a sec " + b64(base64.StdEncoding, "sec")},
		{"tiny escaped value left alone", []string{"a b"}, "a+b a%20b", "a+b a%20b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			if m := Masker(c.secrets); m != nil {
				got = m.Replace(c.in)
			}
			if got != c.want {
				t.Fatalf("Replace(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestMaskerNilWhenNothingToMask(t *testing.T) {
	for _, secrets := range [][]string{nil, {""}, {"abc"}, {"a\nb"}} {
		if m := Masker(secrets); m != nil {
			t.Errorf("Masker(%q) = %v, want nil", secrets, m)
		}
	}
}

// TestFormsLongestFirst: the log writer holds back len(Forms[0])-1 bytes of
// an unterminated line, so the first form must be the longest.
func TestFormsLongestFirst(t *testing.T) {
	forms := Forms([]string{"four", "a much longer secret value"})
	if len(forms) == 0 || forms[0] != base64.StdEncoding.EncodeToString([]byte("a much longer secret value")) {
		t.Fatalf("forms %q", forms)
	}
	for i := 1; i < len(forms); i++ {
		if len(forms[i]) > len(forms[i-1]) {
			t.Fatalf("forms not longest first: %q", forms)
		}
	}
}
