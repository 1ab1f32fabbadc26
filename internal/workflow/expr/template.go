package expr

import (
	"fmt"
	"strings"
	"unicode"
)

// piece is a part of a string that may contain `${{ }}`: literal text, or the
// expression between `${{` and `}}`.
type piece struct {
	text string
	off  int // byte offset of text within the whole string
	expr bool
}

// split cuts whole[from:to] into literal text and expressions. An expression
// ends at the first `}}` that is not inside a single-quoted string literal,
// so `${{ format('{{0}}', 1) }}` is one expression.
func split(whole string, from, to int) ([]piece, *Error) {
	s := whole[:to]
	var out []piece
	i := from
	for {
		j := strings.Index(s[i:], "${{")
		if j < 0 {
			if i < len(s) {
				out = append(out, piece{text: s[i:], off: i})
			}
			return out, nil
		}
		open := i + j
		if open > i {
			out = append(out, piece{text: s[i:open], off: i})
		}
		start := open + 3
		end := -1
		inString := false
		for k := start; k < len(s); k++ {
			switch {
			case s[k] == '\'':
				// A '' escape toggles twice and so stays inside the string.
				inString = !inString
			case !inString && s[k] == '}' && k+1 < len(s) && s[k+1] == '}':
				end = k
			}
			if end >= 0 {
				break
			}
		}
		if end < 0 {
			msg := `unterminated expression: "${{" has no closing "}}"`
			if inString {
				msg += " (a string literal in it is not closed)"
			}
			return nil, source{whole: whole}.errAt(open, "%s", msg)
		}
		out = append(out, piece{text: s[start:end], off: start, expr: true})
		i = end + 2
	}
}

// template is a parsed string with `${{ }}` in it.
type template struct {
	pieces     []piece
	progs      []*program // parallel to pieces; nil for literal text
	usesStatus bool
}

func parseTemplate(whole string, from, to int, known func(string) bool, list func() []string) (*template, *Error) {
	pieces, err := split(whole, from, to)
	if err != nil {
		return nil, err
	}
	t := &template{pieces: pieces, progs: make([]*program, len(pieces))}
	for i, pc := range pieces {
		if !pc.expr {
			continue
		}
		p, err := parse(source{whole: whole, base: pc.off}, pc.text, known, list)
		if err != nil {
			return nil, err
		}
		t.progs[i] = p
		t.usesStatus = t.usesStatus || p.usesStatus
	}
	return t, nil
}

func (t *template) render(env *Env) (string, error) {
	var b strings.Builder
	for i, pc := range t.pieces {
		if !pc.expr {
			b.WriteString(pc.text)
			continue
		}
		v, err := t.progs[i].run(env)
		if err != nil {
			return "", err
		}
		b.WriteString(String(v))
		if b.Len() > MaxValueBytes {
			return "", &Error{Col: 1, Msg: fmt.Sprintf("the text would be over %d bytes, the most an expression may make", MaxValueBytes)}
		}
	}
	return b.String(), nil
}

// Interpolate replaces every `${{ expr }}` in s with String of its value and
// keeps the text around them. Every expression is parsed and checked before
// any is evaluated.
func Interpolate(s string, env *Env) (string, error) {
	if !strings.Contains(s, "${{") {
		return s, nil
	}
	if env == nil {
		env = &Env{}
	}
	known, list := contextChecker(envContextNames(env))
	t, perr := parseTemplate(s, 0, len(s), known, list)
	if perr != nil {
		return "", perr
	}
	return t.render(env)
}

// Check parses every `${{ }}` in s and reports the first syntax error,
// unknown function, wrong argument count or context name not in known
// (compared ignoring case). Nothing is evaluated; text outside `${{ }}` is not
// looked at.
func Check(s string, known []string) error {
	k, list := contextChecker(known)
	if _, err := parseTemplate(s, 0, len(s), k, list); err != nil {
		return err
	}
	return nil
}

// condition is a parsed `if:` value.
type condition struct {
	empty bool
	prog  *program  // the expression, when the value is a single one
	tmpl  *template // when the value is text with `${{ }}` in it
}

func (c *condition) usesStatus() bool {
	switch {
	case c.prog != nil:
		return c.prog.usesStatus
	case c.tmpl != nil:
		return c.tmpl.usesStatus
	}
	return false
}

// parseCond parses an `if:` value:
//   - empty (or blank): success();
//   - exactly one `${{ expr }}`, or an expression without `${{ }}`: expr;
//   - anything else containing `${{`: a string template, whose value is the
//     interpolated string (GitHub's quirk: `${{ false }} && x` is the
//     non-empty, hence true, string "false && x").
func parseCond(cond string, known func(string) bool, list func() []string) (*condition, *Error) {
	start := len(cond) - len(strings.TrimLeftFunc(cond, unicode.IsSpace))
	end := len(strings.TrimRightFunc(cond, unicode.IsSpace))
	if start >= end {
		return &condition{empty: true}, nil
	}
	if !strings.Contains(cond[start:end], "${{") {
		p, err := parse(source{whole: cond, base: start}, cond[start:end], known, list)
		if err != nil {
			return nil, err
		}
		return &condition{prog: p}, nil
	}
	t, err := parseTemplate(cond, start, end, known, list)
	if err != nil {
		return nil, err
	}
	if len(t.pieces) == 1 && t.pieces[0].expr {
		return &condition{prog: t.progs[0]}, nil
	}
	return &condition{tmpl: t}, nil
}

// If evaluates an `if:` condition, written with or without `${{ }}`. Unless
// the condition calls success(), failure(), always() or cancelled(), it is
// evaluated as `success() && (cond)`; an empty condition is success(). A
// condition with text outside its `${{ }}` is a string template and is true
// when the interpolated string is not empty.
func If(cond string, env *Env) (bool, error) {
	if env == nil {
		env = &Env{}
	}
	known, list := contextChecker(envContextNames(env))
	c, perr := parseCond(cond, known, list)
	if perr != nil {
		return false, perr
	}
	if c.empty {
		return env.Status.success(), nil
	}
	if !c.usesStatus() && !env.Status.success() {
		// success() && (cond): cond is not evaluated.
		return false, nil
	}
	if c.tmpl != nil {
		s, err := c.tmpl.render(env)
		if err != nil {
			return false, err
		}
		return s != "", nil
	}
	v, err := c.prog.run(env)
	if err != nil {
		return false, err
	}
	return Truthy(v), nil
}

// CheckIf is Check for an `if:` condition, written with or without `${{ }}`.
func CheckIf(cond string, known []string) error {
	k, list := contextChecker(known)
	if _, err := parseCond(cond, k, list); err != nil {
		return err
	}
	return nil
}
