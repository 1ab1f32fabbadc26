package redact

import "testing"

func TestURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://hooks.slack.com/services/T1/B2/XXXX", "https://hooks.slack.com/…"},
		{"https://user:pw@ci.example:8443/in?token=t#f", "https://ci.example:8443/…"},
		{"https://ci.example/?token=t", "https://ci.example/…"},
		{"https://ci.example/", "https://ci.example/"},
		{"https://ci.example", "https://ci.example"},
		{"https://token@ci.example", "https://ci.example"},
		{"smtp://mail.example:587", "smtp://mail.example:587"},
		{"https://hooks.slack.com/…", "https://hooks.slack.com/…"}, // already redacted
		{"not a url", ""},
		{"https://%zz/x", ""},
	} {
		if got := URL(c.in); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`Post "https://hooks.slack.com/services/T1/B2/XXXX": dial tcp 1.2.3.4:443: connect: connection refused`,
			`Post "https://hooks.slack.com/…": dial tcp 1.2.3.4:443: connect: connection refused`},
		{"POST http://u:p@127.0.0.1:9/in?token=t answered 500 Internal Server Error",
			"POST http://127.0.0.1:9/… answered 500 Internal Server Error"},
		{`failed to parse Location header "https://x.example/a?sig=s": bad`, `failed to parse Location header "https://x.example/…": bad`},
		{"two: http://a.example/p1 and https://b.example/p2.", "two: http://a.example/… and https://b.example/…."},
		{"https://%zz/secret-path", "https://…"},
		{"Post http://h.example/secret-path: refused", "Post http://h.example/…: refused"},
		{"(see https://h.example/a?t=secret-query)", "(see https://h.example/…)"},
		{"smtp://mail.example:587 → ops@example.test", "smtp://mail.example:587 → ops@example.test"},
		{"dial tcp 127.0.0.1:9: connect: connection refused", "dial tcp 127.0.0.1:9: connect: connection refused"},
		{"", ""},
	} {
		if got := URLs(c.in); got != c.want {
			t.Errorf("URLs(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}
