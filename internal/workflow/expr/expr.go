// Package expr evaluates GitHub Actions expressions (`${{ … }}`) as described
// in GitHub's "Evaluate expressions in workflows and actions" reference.
//
// Lexing and parsing are done by github.com/rhysd/actionlint; evaluation is ours.
// We do not use nektos/act's evaluator because it drags act's whole module graph.
//
// Values are JSON-like: nil, bool, float64, string, []any and map[string]any.
// Other Go values found in contexts (ints, []string, map[string]string,
// structs, ...) are converted to that form when they are read.
//
// Where GitHub's behaviour is not spelled out by its documentation, this
// package follows GitHub's runner (actions/runner, the Expressions2 SDK):
// numbers are printed with 15 significant digits ("G15"), strings compare
// case-insensitively, and a failed property lookup yields null.
package expr

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rhysd/actionlint"
)

// Status is what the status functions see.
type Status struct{ Failed, Cancelled bool }

// Env is what an expression can read.
type Env struct {
	// Contexts by name: github, env, vars, secrets, steps, needs, matrix,
	// inputs, job, runner, strategy (only those present are known; naming a
	// context that is absent is an error naming it and listing the known ones).
	Contexts map[string]any
	// HashFiles implements hashFiles(patterns...); nil makes hashFiles an error
	// saying it is not available here.
	HashFiles func(patterns []string) (string, error)
	Status    Status
}

// Error is an expression that does not parse or cannot be evaluated. Col is the
// 1-based column within the string given to Eval/If/Interpolate/Check, counted
// in characters (runes); a newline counts as one character, so for a
// multi-line string Col is the 1-based character offset from its start.
type Error struct {
	Col int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("col %d: %s", e.Col, e.Msg) }

// source locates an expression inside the string a caller handed us, so that
// errors can carry a column within that string.
type source struct {
	whole string // the string given to Eval/If/Interpolate/Check
	base  int    // byte offset of the expression within whole
}

// errAt makes an *Error at byte offset off within the expression.
func (s source) errAt(off int, format string, args ...any) *Error {
	p := s.base + off
	p = max(0, min(p, len(s.whole)))
	return &Error{Col: utf8.RuneCountInString(s.whole[:p]) + 1, Msg: fmt.Sprintf(format, args...)}
}

// program is a parsed expression.
type program struct {
	src  source
	root actionlint.ExprNode
	// bigInts holds integer literals that do not fit actionlint's 32-bit
	// IntNode, by byte offset in the expression. They were replaced by
	// identifiers of the same length before parsing (see rewriteBigInts).
	bigInts map[int]float64
	// usesStatus is true when the expression calls success(), failure(),
	// always() or cancelled().
	usesStatus bool
}

// parse parses one expression (the text between `${{` and `}}`) and checks it
// statically: functions must exist and get a valid number of arguments, and
// every context named must satisfy known.
func parse(src source, expr string, known func(name string) bool, knownList func() []string) (*program, *Error) {
	toks := lexAll(expr)
	rewritten, bigInts := rewriteBigInts(expr, toks)
	// actionlint's lexer expects the `}}` that ends an expression.
	lex := actionlint.NewExprLexer(rewritten + "}}")
	root, perr := actionlint.NewExprParser().Parse(lex)
	if perr != nil {
		msg := perr.Message
		if perr.Offset >= len(expr) {
			// The error is at the `}}` we appended: say what it means.
			msg = strings.Replace(msg, "unexpected character '}'", "unexpected end of expression", 1)
			msg = strings.Replace(msg, "unexpected EOF", "unexpected end of expression", 1)
			if strings.Contains(msg, "end of string literal") {
				msg = "unterminated string literal (no closing ')"
			}
		}
		return nil, src.errAt(min(perr.Offset, len(expr)), "%s", msg)
	}
	if end := lex.Offset(); end != len(expr)+2 {
		// The lexer met a `}}` (or a lone `}` followed by ours) before the
		// end of the expression.
		return nil, src.errAt(end-2, "unexpected %q in expression", "}")
	}
	p := &program{src: src, bigInts: bigInts}
	p.root = toks.regroup(root)
	if err := p.check(p.root, known, knownList); err != nil {
		return nil, err
	}
	return p, nil
}

// check walks the tree once before evaluation, so that errors GitHub reports
// when it parses a workflow are reported even in branches that short-circuit.
func (p *program) check(n actionlint.ExprNode, known func(string) bool, knownList func() []string) *Error {
	switch n := n.(type) {
	case *actionlint.VariableNode:
		if _, ok := p.bigInts[n.Token().Offset]; ok {
			return nil
		}
		if !known(n.Name) {
			names := knownList()
			if len(names) == 0 {
				return p.src.errAt(n.Token().Offset, "unknown context %q: no contexts are available here", n.Name)
			}
			return p.src.errAt(n.Token().Offset, "unknown context %q; available contexts: %s", n.Name, strings.Join(names, ", "))
		}
	case *actionlint.ObjectDerefNode:
		return p.check(n.Receiver, known, knownList)
	case actionlint.ObjectDerefNode:
		return p.check(n.Receiver, known, knownList)
	case *actionlint.ArrayDerefNode:
		return p.check(n.Receiver, known, knownList)
	case actionlint.ArrayDerefNode:
		return p.check(n.Receiver, known, knownList)
	case *actionlint.IndexAccessNode:
		if err := p.check(n.Operand, known, knownList); err != nil {
			return err
		}
		return p.check(n.Index, known, knownList)
	case *actionlint.NotOpNode:
		return p.check(n.Operand, known, knownList)
	case *actionlint.CompareOpNode:
		if err := p.check(n.Left, known, knownList); err != nil {
			return err
		}
		return p.check(n.Right, known, knownList)
	case *actionlint.LogicalOpNode:
		if err := p.check(n.Left, known, knownList); err != nil {
			return err
		}
		return p.check(n.Right, known, knownList)
	case *actionlint.FuncCallNode:
		off := n.Token().Offset
		if _, ok := p.bigInts[off]; ok {
			// A number literal followed by '(' (see rewriteBigInts).
			return p.src.errAt(off, "unexpected %q after a number", "(")
		}
		f, ok := functions[strings.ToLower(n.Callee)]
		if !ok {
			return p.src.errAt(off, "unknown function %q", n.Callee)
		}
		if err := f.checkArgs(len(n.Args)); err != "" {
			return p.src.errAt(off, "%s", err)
		}
		if f.status {
			p.usesStatus = true
		}
		for _, a := range n.Args {
			if err := p.check(a, known, knownList); err != nil {
				return err
			}
		}
	}
	return nil
}

// tokens is an expression's tokens, as far as it lexes.
type tokens struct {
	list    []*actionlint.Token
	at      map[int]int // token offset -> index in list
	closeOf map[int]int // offset of '(' -> offset of its ')'
}

func lexAll(expr string) *tokens {
	t := &tokens{at: map[int]int{}, closeOf: map[int]int{}}
	lex := actionlint.NewExprLexer(expr + "}}")
	var open []int
	for {
		tok := lex.Next()
		if lex.Err() != nil || tok.Kind == actionlint.TokenKindEnd {
			return t
		}
		t.at[tok.Offset] = len(t.list)
		t.list = append(t.list, tok)
		switch tok.Kind {
		case actionlint.TokenKindLeftParen:
			open = append(open, tok.Offset)
		case actionlint.TokenKindRightParen:
			if len(open) > 0 {
				t.closeOf[open[len(open)-1]] = tok.Offset
				open = open[:len(open)-1]
			}
		}
	}
}

// rewriteBigInts works around actionlint parsing integer literals into a
// 32-bit int: a literal outside that range fails to parse there, but GitHub's
// numbers are doubles. Each such literal is replaced by an identifier of the
// same length (so offsets do not move) and its value is returned by offset;
// the evaluator recognises those identifiers by their offset.
func rewriteBigInts(expr string, toks *tokens) (string, map[int]float64) {
	var out []byte
	var vals map[int]float64
	for _, t := range toks.list {
		if t.Kind != actionlint.TokenKindInt {
			continue
		}
		if _, err := strconv.ParseInt(t.Value, 0, 32); err == nil {
			continue
		}
		end := t.Offset + len(t.Value)
		if end > len(expr) || end < len(expr) && isIdentByte(expr[end]) {
			// Replacing it would merge it with what follows; leave the
			// parser to reject it.
			continue
		}
		n, ok := new(big.Int).SetString(t.Value, 0)
		if !ok {
			continue
		}
		f, _ := new(big.Float).SetInt(n).Float64()
		if out == nil {
			out = []byte(expr)
			vals = map[int]float64{}
		}
		out[t.Offset] = '_'
		for i := t.Offset + 1; i < end; i++ {
			out[i] = 'n'
		}
		vals[t.Offset] = f
	}
	if out == nil {
		return expr, nil
	}
	return string(out), vals
}

// regroup fixes how actionlint groups chains of comparisons. actionlint
// parses all six comparison operators at one precedence level, associating
// to the right (`a < b == c` is `a < (b == c)`); GitHub gives <, <=, >, >=
// precedence over == and != and associates to the left (`(a < b) == c`).
// Parentheses written in the source are kept.
func (t *tokens) regroup(n actionlint.ExprNode) actionlint.ExprNode {
	switch n := n.(type) {
	case *actionlint.ObjectDerefNode:
		n.Receiver = t.regroup(n.Receiver)
	case *actionlint.ArrayDerefNode:
		n.Receiver = t.regroup(n.Receiver)
	case *actionlint.IndexAccessNode:
		n.Operand = t.regroup(n.Operand)
		n.Index = t.regroup(n.Index)
	case *actionlint.NotOpNode:
		n.Operand = t.regroup(n.Operand)
	case *actionlint.LogicalOpNode:
		n.Left = t.regroup(n.Left)
		n.Right = t.regroup(n.Right)
	case *actionlint.FuncCallNode:
		for i, a := range n.Args {
			n.Args[i] = t.regroup(a)
		}
	case *actionlint.CompareOpNode:
		// Flatten the chain a op b op c ... that was written without
		// parentheses; actionlint builds it down the right-hand side.
		operands := []actionlint.ExprNode{t.regroup(n.Left)}
		kinds := []actionlint.CompareOpNodeKind{n.Kind}
		cur := n.Right
		for {
			c, ok := cur.(*actionlint.CompareOpNode)
			if !ok || t.parenthesized(c) {
				break
			}
			operands = append(operands, t.regroup(c.Left))
			kinds = append(kinds, c.Kind)
			cur = c.Right
		}
		operands = append(operands, t.regroup(cur))
		// Relational operators first, left to right, then equality.
		var terms []actionlint.ExprNode
		var eqKinds []actionlint.CompareOpNodeKind
		acc := operands[0]
		for i, k := range kinds {
			if k.IsEqualityOp() {
				terms = append(terms, acc)
				eqKinds = append(eqKinds, k)
				acc = operands[i+1]
			} else {
				acc = &actionlint.CompareOpNode{Kind: k, Left: acc, Right: operands[i+1]}
			}
		}
		terms = append(terms, acc)
		res := terms[0]
		for i, k := range eqKinds {
			res = &actionlint.CompareOpNode{Kind: k, Left: res, Right: terms[i+1]}
		}
		return res
	}
	return n
}

// parenthesized reports whether comparison c was written in parentheses: one
// of the '(' right before its first token closes after the start of its
// right operand (a '(' that closes earlier groups only its left operand).
func (t *tokens) parenthesized(c *actionlint.CompareOpNode) bool {
	i, ok := t.at[c.Token().Offset]
	if !ok {
		return false
	}
	right := c.Right.Token().Offset
	for j := i - 1; j >= 0 && t.list[j].Kind == actionlint.TokenKindLeftParen; j-- {
		if t.closeOf[t.list[j].Offset] > right {
			return true
		}
	}
	return false
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// contextChecker returns the predicates parse needs for a set of context names.
func contextChecker(names []string) (func(string) bool, func() []string) {
	known := func(name string) bool {
		return slices.ContainsFunc(names, func(k string) bool { return strings.EqualFold(k, name) })
	}
	list := func() []string {
		l := make([]string, 0, len(names))
		for _, k := range names {
			l = append(l, strings.ToLower(k))
		}
		slices.Sort(l)
		return slices.Compact(l)
	}
	return known, list
}

func envContextNames(env *Env) []string {
	if env == nil {
		return nil
	}
	names := make([]string, 0, len(env.Contexts))
	for k := range env.Contexts {
		names = append(names, k)
	}
	return names
}

// Eval evaluates one expression, written without `${{ }}`.
func Eval(src string, env *Env) (any, error) {
	if env == nil {
		env = &Env{}
	}
	known, list := contextChecker(envContextNames(env))
	p, perr := parse(source{whole: src}, src, known, list)
	if perr != nil {
		return nil, perr
	}
	return p.run(env)
}
