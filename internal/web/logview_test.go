package web

import (
	"strings"
	"testing"
	"time"
)

func TestANSIColoursBecomeClassedSpans(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[31mred\x1b[0m done", `<span class="ansi-red">red</span> done`},
		{"\x1b[1;32mok\x1b[m", `<span class="ansi-green ansi-bold">ok</span>`},
		{"\x1b[94mbright\x1b[39m", `<span class="ansi-bright-blue">bright</span>`},
		{"\x1b[43;30mwarn\x1b[49;39m!", `<span class="ansi-black ansi-bg-yellow">warn</span>!`},
		{"\x1b[1mbold\x1b[22m not", `<span class="ansi-bold">bold</span> not`},
		// 256 colours and truecolour: the nearest of the 16, in both the
		// semicolon and the colon forms; nothing of the escape is left.
		{"\x1b[38;5;9mx\x1b[0m", `<span class="ansi-bright-red">x</span>`},
		{"\x1b[38;5;208morange\x1b[0m", `<span class="ansi-yellow">orange</span>`},
		{"\x1b[38;2;0;200;0mg\x1b[0m", `<span class="ansi-green">g</span>`},
		{"\x1b[48:2::0:0:240mb\x1b[0m", `<span class="ansi-bg-blue">b</span>`},
		{"\x1b[38;5;999mbad\x1b[0m", `bad`},
		// Other escapes are dropped: erase line, cursor moves, titles, links.
		{"\x1b[2K\x1b[1Aup", "up"},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1b(Bcharset", "charset"},
		{"bell\x07 nul-ish\x01", "bell nul-ish"},
		{"unterminated \x1b[31", "unterminated "},
		{"trailing \x1b", "trailing "},
		// A progress bar redraws: what follows the last carriage return shows.
		{"10%\r\x1b[32m50%\r100%\r", `<span class="ansi-green">100%</span>`},
		// Markup in a log is text.
		{`<script>alert("x")</script> & 'q'`, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;q&#39;`},
		{"\x1b[31m<img src=x onerror=alert(1)>\x1b[0m", `<span class="ansi-red">&lt;img src=x onerror=alert(1)&gt;</span>`},
	}
	for _, c := range cases {
		if got := string(ANSI(c.in)); got != c.want {
			t.Errorf("ANSI(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestLogRendererCarriesColoursAndNumbersLines(t *testing.T) {
	r := NewLogRenderer()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)
	a := r.Line(10, "\x1b[33mstarts yellow", at)
	b := r.Line(11, "still yellow\x1b[0m", at)
	g := r.Line(12, "##[group]Run <make> test", at)
	e := r.Line(13, "##[endgroup]", at)
	x := r.Line(14, "##[error]Process completed with exit code 2.", at)
	if a.N != 1 || b.N != 2 || g.N != 3 || e.N != 4 || x.N != 5 {
		t.Fatalf("numbers %d %d %d %d %d", a.N, b.N, g.N, e.N, x.N)
	}
	if string(b.HTML) != `<span class="ansi-yellow">still yellow</span>` {
		t.Errorf("colour not carried to the next line: %s", b.HTML)
	}
	if g.Kind != "group" || string(g.HTML) != "Run &lt;make&gt; test" || e.Kind != "endgroup" || e.HTML != "" {
		t.Errorf("group lines: %+v %+v", g, e)
	}
	if x.Class != "error" || !strings.Contains(string(x.HTML), "Error: ") {
		t.Errorf("error line: %+v", x)
	}
	el := string(LineElement(a, "/runs/1/actions/2", false))
	if !strings.Contains(el, `href="/runs/1/actions/2#L1"`) || strings.Contains(el, `id=`) || !strings.Contains(el, `datetime="2025-01-02T03:04:05.006Z"`) {
		t.Errorf("line element: %s", el)
	}
}

func TestLogHTMLFoldsSections(t *testing.T) {
	r := NewLogRenderer()
	var lines []LogLine
	for _, s := range []string{"setup", "##[group]Step one", "one", "##[endgroup]", "##[group]Step two", "::group::inner", "deep", "::endgroup::",
		"##[endgroup]", "##[error]Step 2 failed", "##[group]Step three", "running"} {
		lines = append(lines, r.Line(0, s, time.Time{}))
	}
	html := string(LogHTML(lines))
	for _, want := range []string{
		`<span class="ll" id="L1">`,
		`<details class="lg"><summary><span class="ll l-group" id="L2">`,      // finished and fine: folded
		`<details class="lg" open><summary><span class="ll l-group" id="L5">`, // an error follows it
		`<details class="lg"><summary><span class="ll l-group" id="L6">`,      // nested
		`<details class="lg" open data-unclosed><summary><span class="ll l-group" id="L11">`,
		`<span class="ll l-error" id="L10">`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("missing %s in\n%s", want, html)
		}
	}
	if strings.Contains(html, `id="L4"`) || strings.Contains(html, "endgroup") {
		t.Errorf("an endgroup line is shown: %s", html)
	}
	// However many sections a log opens, the page nests a bounded depth.
	r = NewLogRenderer()
	lines = nil
	for range 1000 {
		lines = append(lines, r.Line(0, "##[group]x", time.Time{}))
	}
	html = string(LogHTML(lines))
	depth, deepest := 0, 0
	for rest := html; rest != ""; {
		o, c := strings.Index(rest, "<details"), strings.Index(rest, "</details>")
		switch {
		case o >= 0 && (c < 0 || o < c):
			depth++
			deepest = max(deepest, depth)
			rest = rest[o+1:]
		case c >= 0:
			depth--
			rest = rest[c+1:]
		default:
			rest = ""
		}
	}
	if depth != 0 || deepest != maxGroupDepth {
		t.Fatalf("sections end at depth %d, deepest %d (want %d)", depth, deepest, maxGroupDepth)
	}
}
