package web

import (
	"html/template"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Log lines are shown as a terminal would: ANSI SGR escapes become spans
// with classes (never inline styles, which the content security policy
// refuses, and never the log's own markup: every character of a line is
// escaped), other escapes are dropped, and the sections workflow steps and
// ::group:: open fold.

// LogLine is one stored log line as the console shows it.
type LogLine struct {
	// ID is the stored line's id (the run's log order).
	ID int64 `json:"id"`
	// N is the line's number in its action's log, from 1; the raw log
	// has the same line at the same number.
	N int `json:"n"`
	// Kind is "group" for a line opening a foldable section (HTML is its
	// title), "endgroup" for one closing it (shown as nothing), else "".
	Kind string `json:"kind,omitempty"`
	// Class marks a workflow command line: error, warning, notice, debug
	// or command.
	Class string    `json:"class,omitempty"`
	At    time.Time `json:"at"`
	// HTML is the line's text, escaped, with its colours as spans.
	HTML template.HTML `json:"html"`
}

// ansiStyle is the SGR state in effect: colours are 0–15 (the eight
// colours and their bright forms), -1 the terminal's default.
type ansiStyle struct {
	fg, bg                               int
	bold, dim, italic, underline, strike bool
}

var plainStyle = ansiStyle{fg: -1, bg: -1}

var colourNames = [16]string{"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
	"bright-black", "bright-red", "bright-green", "bright-yellow", "bright-blue", "bright-magenta", "bright-cyan", "bright-white"}

// classes is the style as class names ("" for the default style).
func (st ansiStyle) classes() string {
	var c []string
	if st.fg >= 0 {
		c = append(c, "ansi-"+colourNames[st.fg])
	}
	if st.bg >= 0 {
		c = append(c, "ansi-bg-"+colourNames[st.bg])
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{st.bold, "ansi-bold"}, {st.dim, "ansi-dim"}, {st.italic, "ansi-italic"}, {st.underline, "ansi-underline"}, {st.strike, "ansi-strike"}} {
		if f.on {
			c = append(c, f.name)
		}
	}
	return strings.Join(c, " ")
}

// LogRenderer renders the lines of one action's log in order: colours set
// on one line last until they are reset, as in a terminal, and lines are
// numbered from 1.
type LogRenderer struct {
	n  int
	st ansiStyle
}

// NewLogRenderer starts at line 1 in the default style.
func NewLogRenderer() *LogRenderer { return &LogRenderer{st: plainStyle} }

// NewLogRendererAt starts at line n+1 in the default style: for the last
// lines of a log, whose earlier colours are not known.
func NewLogRendererAt(n int) *LogRenderer { return &LogRenderer{n: n, st: plainStyle} }

// Count is how many lines have been rendered.
func (r *LogRenderer) Count() int { return r.n }

// commandPrefixes are the workflow command lines (as Slipway's workflow
// runner writes them, and ::group:: as any script may) and what they mark.
var commandPrefixes = []struct{ prefix, kind, class, label string }{
	{"##[group]", "group", "", ""},
	{"##[endgroup]", "endgroup", "", ""},
	{"::group::", "group", "", ""},
	{"::endgroup::", "endgroup", "", ""},
	{"##[error]", "", "error", "Error: "},
	{"##[warning]", "", "warning", "Warning: "},
	{"##[notice]", "", "notice", "Notice: "},
	{"##[debug]", "", "debug", "Debug: "},
	{"##[command]", "", "command", ""},
}

// Line renders the next line of the log.
func (r *LogRenderer) Line(id int64, text string, at time.Time) LogLine {
	r.n++
	l := LogLine{ID: id, N: r.n, At: at}
	for _, c := range commandPrefixes {
		if rest, ok := strings.CutPrefix(text, c.prefix); ok {
			l.Kind, l.Class = c.kind, c.class
			text = rest
			if l.Kind == "endgroup" {
				return l
			}
			var b strings.Builder
			if c.label != "" {
				b.WriteString(`<span class="cmd-label">` + c.label + `</span>`)
			}
			r.render(&b, text)
			l.HTML = template.HTML(b.String())
			return l
		}
	}
	var b strings.Builder
	r.render(&b, text)
	l.HTML = template.HTML(b.String())
	return l
}

// ANSI renders one piece of text on its own: escaped, its colours as spans.
func ANSI(text string) template.HTML {
	var b strings.Builder
	(&LogRenderer{st: plainStyle}).render(&b, text)
	return template.HTML(b.String())
}

// render writes text, escaped, with SGR colours as spans. A carriage
// return starts the line over, as a progress bar redraws itself: only what
// follows the last one is shown, though colours set before it still hold.
func (r *LogRenderer) render(b *strings.Builder, text string) {
	text = strings.TrimRight(text, "\r")
	if i := strings.LastIndexByte(text, '\r'); i >= 0 {
		r.scan(nil, text[:i])
		text = text[i+1:]
	}
	r.scan(b, text)
}

// scan applies text's escapes to the style and, when b is not nil, writes
// its printable characters to b.
func (r *LogRenderer) scan(b *strings.Builder, s string) {
	var run strings.Builder // text in the current style, not yet written
	runStyle := r.st
	flush := func() {
		if b == nil || run.Len() == 0 {
			run.Reset()
			return
		}
		if cls := runStyle.classes(); cls != "" {
			b.WriteString(`<span class="` + cls + `">`)
			template.HTMLEscape(b, []byte(run.String()))
			b.WriteString(`</span>`)
		} else {
			template.HTMLEscape(b, []byte(run.String()))
		}
		run.Reset()
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0x1b {
			n, params, final := escape(s[i:])
			if final == 'm' {
				r.st.sgr(params)
			}
			i += n
			continue
		}
		if c < 0x20 && c != '\t' || c == 0x7f {
			i++
			continue
		}
		ru, size := utf8.DecodeRuneInString(s[i:])
		if ru >= 0x80 && ru <= 0x9f { // C1 controls (an 8-bit CSI among them)
			i += size
			continue
		}
		if r.st != runStyle {
			flush()
			runStyle = r.st
		}
		run.WriteString(s[i : i+size])
		i += size
	}
	flush()
}

// escape reads the escape sequence at the start of s (s[0] is ESC) and
// returns its length and, for a control sequence (CSI), its parameters and
// final byte. An unterminated sequence runs to the end of the line.
func escape(s string) (n int, params string, final byte) {
	if len(s) < 2 {
		return len(s), "", 0
	}
	switch s[1] {
	case '[': // CSI: parameter bytes, intermediate bytes, one final byte
		i := 2
		for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
			i++
		}
		p := s[2:i]
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
			return i + 1, p, s[i]
		}
		return i, "", 0
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 && s[1] == ']' {
				return i + 1, "", 0
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2, "", 0
			}
		}
		return len(s), "", 0
	case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ': // a designator and its one byte
		if len(s) >= 3 {
			return 3, "", 0
		}
		return len(s), "", 0
	}
	return 2, "", 0
}

// sgr applies Select Graphic Rendition parameters ("1;31", "38;5;208",
// "38:2::255:128:0").
func (st *ansiStyle) sgr(params string) {
	if params == "" {
		*st = plainStyle
		return
	}
	if strings.ContainsAny(params, "<=>?") { // private sequences are not SGR
		return
	}
	fields := strings.Split(params, ";")
	for j := 0; j < len(fields); j++ {
		sub := strings.Split(fields[j], ":")
		code := num(sub[0])
		switch {
		case code == 0:
			*st = plainStyle
		case code == 1:
			st.bold = true
		case code == 2:
			st.dim = true
		case code == 3:
			st.italic = true
		case code == 4:
			st.underline = len(sub) < 2 || num(sub[1]) != 0
		case code == 9:
			st.strike = true
		case code == 21:
			st.underline = true
		case code == 22:
			st.bold, st.dim = false, false
		case code == 23:
			st.italic = false
		case code == 24:
			st.underline = false
		case code == 29:
			st.strike = false
		case code >= 30 && code <= 37:
			st.fg = code - 30
		case code == 39:
			st.fg = -1
		case code >= 40 && code <= 47:
			st.bg = code - 40
		case code == 49:
			st.bg = -1
		case code >= 90 && code <= 97:
			st.fg = code - 90 + 8
		case code >= 100 && code <= 107:
			st.bg = code - 100 + 8
		case code == 38 || code == 48:
			var c int
			if len(sub) > 1 {
				c = extendedColour(sub[1:])
			} else {
				var used int
				c, used = extendedColourFields(fields[j+1:])
				j += used
			}
			if code == 38 {
				st.fg = c
			} else {
				st.bg = c
			}
		}
	}
}

// extendedColour reads a colon form: ["5", n] or ["2", (colour space,) r, g, b].
func extendedColour(sub []string) int {
	switch num(sub[0]) {
	case 5:
		if len(sub) >= 2 {
			return colour256(num(sub[1]))
		}
	case 2:
		if len(sub) >= 4 {
			rgb := sub[len(sub)-3:]
			return nearest16(num(rgb[0]), num(rgb[1]), num(rgb[2]))
		}
	}
	return -1
}

// extendedColourFields reads a semicolon form (5;n or 2;r;g;b) and says how
// many fields it took.
func extendedColourFields(f []string) (int, int) {
	if len(f) == 0 {
		return -1, 0
	}
	switch num(f[0]) {
	case 5:
		if len(f) >= 2 {
			return colour256(num(f[1])), 2
		}
		return -1, len(f)
	case 2:
		if len(f) >= 4 {
			return nearest16(num(f[1]), num(f[2]), num(f[3])), 4
		}
		return -1, len(f)
	}
	return -1, 1
}

// num reads a parameter; an empty or malformed one counts as 0, and a huge
// one as out of range.
func num(s string) int {
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<16 {
		return -1
	}
	return n
}

// palette is xterm's default for the 16 colours, to find the nearest one.
var palette = [16][3]int{{0, 0, 0}, {205, 0, 0}, {0, 205, 0}, {205, 205, 0}, {0, 0, 238}, {205, 0, 205}, {0, 205, 205}, {229, 229, 229},
	{127, 127, 127}, {255, 0, 0}, {0, 255, 0}, {255, 255, 0}, {92, 92, 255}, {255, 0, 255}, {0, 255, 255}, {255, 255, 255}}

// colour256 maps a 256-colour index to one of the 16: the first 16 are
// those, the colour cube and grey ramp go to the nearest.
func colour256(n int) int {
	switch {
	case n < 0 || n > 255:
		return -1
	case n < 16:
		return n
	case n < 232:
		n -= 16
		level := func(v int) int {
			if v == 0 {
				return 0
			}
			return 55 + 40*v
		}
		return nearest16(level(n/36), level(n/6%6), level(n%6))
	}
	g := 8 + 10*(n-232)
	return nearest16(g, g, g)
}

func nearest16(r, g, b int) int {
	if r < 0 || g < 0 || b < 0 || r > 255 || g > 255 || b > 255 {
		return -1
	}
	best, bestD := -1, 1<<30
	for i, p := range palette {
		dr, dg, db := r-p[0], g-p[1], b-p[2]
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// LineElement is the HTML of one line: its number, a link to
// page+"#L"+number (with that id when anchor is set), its time (shown on
// demand) and its text.
func LineElement(l LogLine, page string, anchor bool) template.HTML {
	var b strings.Builder
	writeLine(&b, l, page, anchor)
	return template.HTML(b.String())
}

func writeLine(b *strings.Builder, l LogLine, page string, anchor bool) {
	n := strconv.Itoa(l.N)
	b.WriteString(`<span class="ll`)
	if l.Class != "" {
		b.WriteString(" l-" + l.Class)
	}
	if l.Kind == "group" {
		b.WriteString(" l-group")
	}
	b.WriteString(`"`)
	if anchor {
		b.WriteString(` id="L` + n + `"`)
	}
	b.WriteString(`><a class="ln" href="`)
	template.HTMLEscape(b, []byte(page))
	b.WriteString(`#L` + n + `">` + n + `</a>`)
	if !l.At.IsZero() {
		at := l.At.UTC()
		b.WriteString(`<time class="ts" datetime="` + at.Format(time.RFC3339Nano) + `" title="` + at.Format("2006-01-02 15:04:05.000 UTC") + `">` + at.Format("15:04:05.000") + `</time>`)
	}
	b.WriteString(`<span class="lt">` + string(l.HTML) + `</span></span>`)
}

// maxGroupDepth bounds how deep sections nest: past it a new section
// closes the innermost one first, so no log can make the page arbitrarily deep.
const maxGroupDepth = 8

type logNode struct {
	line     LogLine
	group    bool
	closed   bool
	open     bool
	children []*logNode
}

// LogHTML lays out an action's lines: each section a <details> with its
// title as summary, open while it has not ended (the step running now),
// when it holds an error, or when an error follows it (the step that
// failed); the others folded.
func LogHTML(lines []LogLine) template.HTML {
	root := &logNode{group: true}
	stack := []*logNode{root}
	for _, l := range lines {
		top := stack[len(stack)-1]
		switch l.Kind {
		case "group":
			if len(stack) > maxGroupDepth {
				top.closed = true
				stack = stack[:len(stack)-1]
				top = stack[len(stack)-1]
			}
			g := &logNode{line: l, group: true}
			top.children = append(top.children, g)
			stack = append(stack, g)
		case "endgroup":
			if len(stack) > 1 {
				top.closed = true
				stack = stack[:len(stack)-1]
			}
		default:
			if l.Class == "error" {
				for _, g := range stack[1:] {
					g.open = true
				}
				if k := len(top.children); k > 0 && top.children[k-1].group {
					top.children[k-1].open = true
				}
			}
			top.children = append(top.children, &logNode{line: l})
		}
	}
	var b strings.Builder
	for _, c := range root.children {
		writeNode(&b, c)
	}
	return template.HTML(b.String())
}

func writeNode(b *strings.Builder, n *logNode) {
	if !n.group {
		writeLine(b, n.line, "", true)
		return
	}
	b.WriteString(`<details class="lg"`)
	if n.open || !n.closed {
		b.WriteString(` open`)
	}
	if !n.closed {
		b.WriteString(` data-unclosed`)
	}
	b.WriteString(`><summary>`)
	writeLine(b, n.line, "", true)
	b.WriteString(`</summary><div class="lgb">`)
	for _, c := range n.children {
		writeNode(b, c)
	}
	b.WriteString(`</div></details>`)
}
