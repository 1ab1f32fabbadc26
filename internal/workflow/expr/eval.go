package expr

import (
	"math"

	"github.com/rhysd/actionlint"
)

type evaluator struct {
	p   *program
	env *Env
}

// run evaluates the program. Object-filter results are returned as plain
// arrays.
func (p *program) run(env *Env) (any, error) {
	ev := &evaluator{p: p, env: env}
	v, err := ev.eval(p.root)
	if err != nil {
		return nil, err
	}
	return plain(v), nil
}

func plain(v any) any {
	if f, ok := v.(filtered); ok {
		return []any(f)
	}
	return v
}

func (ev *evaluator) eval(n actionlint.ExprNode) (any, error) {
	switch n := n.(type) {
	case *actionlint.NullNode:
		return nil, nil
	case *actionlint.BoolNode:
		return n.Value, nil
	case *actionlint.IntNode:
		return float64(n.Value), nil
	case *actionlint.FloatNode:
		return n.Value, nil
	case *actionlint.StringNode:
		return n.Value, nil
	case *actionlint.VariableNode:
		if f, ok := ev.p.bigInts[n.Token().Offset]; ok {
			return f, nil
		}
		v, ok := lookup(ev.env.Contexts, n.Name)
		if !ok {
			// parse has already rejected unknown contexts.
			return nil, ev.p.src.errAt(n.Token().Offset, "unknown context %q", n.Name)
		}
		return v, nil
	case *actionlint.ObjectDerefNode:
		return ev.deref(n.Receiver, n.Property)
	case actionlint.ObjectDerefNode:
		return ev.deref(n.Receiver, n.Property)
	case *actionlint.ArrayDerefNode:
		return ev.star(n.Receiver)
	case actionlint.ArrayDerefNode:
		return ev.star(n.Receiver)
	case *actionlint.IndexAccessNode:
		recv, err := ev.eval(n.Operand)
		if err != nil {
			return nil, err
		}
		idx, err := ev.eval(n.Index)
		if err != nil {
			return nil, err
		}
		return index(recv, keyOf(idx)), nil
	case *actionlint.NotOpNode:
		v, err := ev.eval(n.Operand)
		if err != nil {
			return nil, err
		}
		return !Truthy(v), nil
	case *actionlint.CompareOpNode:
		l, err := ev.eval(n.Left)
		if err != nil {
			return nil, err
		}
		r, err := ev.eval(n.Right)
		if err != nil {
			return nil, err
		}
		return compareOp(n.Kind, l, r), nil
	case *actionlint.LogicalOpNode:
		l, err := ev.eval(n.Left)
		if err != nil {
			return nil, err
		}
		// && and || yield one of their operands, not a boolean.
		if Truthy(l) == (n.Kind == actionlint.LogicalOpNodeKindOr) {
			return l, nil
		}
		return ev.eval(n.Right)
	case *actionlint.FuncCallNode:
		return ev.call(n)
	}
	return nil, ev.p.src.errAt(0, "unsupported expression node %T", n)
}

func compareOp(k actionlint.CompareOpNodeKind, l, r any) bool {
	switch k {
	case actionlint.CompareOpNodeKindEq:
		return equal(l, r)
	case actionlint.CompareOpNodeKindNotEq:
		return !equal(l, r)
	}
	// <= and >= are "equal or less/greater", as in GitHub's runner.
	c, ok := compare(l, r)
	switch k {
	case actionlint.CompareOpNodeKindLess:
		return ok && c < 0
	case actionlint.CompareOpNodeKindLessEq:
		return equal(l, r) || ok && c < 0
	case actionlint.CompareOpNodeKindGreater:
		return ok && c > 0
	case actionlint.CompareOpNodeKindGreaterEq:
		return equal(l, r) || ok && c > 0
	}
	return false
}

func (ev *evaluator) deref(recv actionlint.ExprNode, prop string) (any, error) {
	v, err := ev.eval(recv)
	if err != nil {
		return nil, err
	}
	return index(v, keyOf(prop)), nil
}

func (ev *evaluator) star(recv actionlint.ExprNode) (any, error) {
	v, err := ev.eval(recv)
	if err != nil {
		return nil, err
	}
	return index(v, key{star: true}), nil
}

// key is an evaluated property name or index.
type key struct {
	star   bool
	str    string // for objects; valid when hasStr
	hasStr bool
	int    int // for arrays; valid when hasInt
	hasInt bool
}

// keyOf makes a key of an index value: a primitive is looked up in objects as
// its string form; a number (or a string that parses as one) that is finite
// and not negative indexes arrays, rounded down.
func keyOf(v any) key {
	var k key
	if isPrimitive(v) {
		k.str, k.hasStr = String(v), true
	}
	if f := toNumber(v); !math.IsNaN(f) && f >= 0 && f < math.MaxInt32 {
		k.int, k.hasInt = int(math.Floor(f)), true
	}
	return k
}

// index applies a property access, an index or `.*` to v. A missing property
// or index gives null; on the result of an object filter it applies to each
// element and drops the elements where it finds nothing.
func index(v any, k key) any {
	switch x := v.(type) {
	case filtered:
		out := filtered{}
		for _, e := range x {
			switch item := norm(e).(type) {
			case map[string]any:
				if k.star {
					for _, name := range sortedKeys(item) {
						out = append(out, item[name])
					}
				} else if k.hasStr {
					if found, ok := lookup(item, k.str); ok {
						out = append(out, found)
					}
				}
			case []any:
				if k.star {
					out = append(out, item...)
				} else if k.hasInt && k.int < len(item) {
					out = append(out, item[k.int])
				}
			}
		}
		return out
	case []any:
		if k.star {
			return append(filtered{}, x...)
		}
		if k.hasInt && k.int < len(x) {
			return norm(x[k.int])
		}
		return nil
	case map[string]any:
		if k.star {
			out := make(filtered, 0, len(x))
			for _, name := range sortedKeys(x) {
				out = append(out, x[name])
			}
			return out
		}
		if k.hasStr {
			found, _ := lookup(x, k.str)
			return found
		}
		return nil
	}
	if k.star {
		return filtered{}
	}
	return nil
}
