package workflow

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// MaxMatrixCombinations is GitHub's limit on the jobs one matrix generates.
const MaxMatrixCombinations = 256

// maxMatrixProduct bounds the combinations built before exclude is applied,
// so that a huge product cannot exhaust memory or time.
const maxMatrixProduct = 1 << 16

// ExpandMatrix turns an evaluated matrix (map[string]any, no ${{ }} left) into
// its combinations, per GitHub's rules for include and exclude: exclude first
// (an entry removes every combination whose values equal all of the entry's);
// then each include entry is added to every combination where it overwrites no
// original matrix value (values added by an earlier include may be overwritten),
// else becomes a new combination. New combinations from include are never
// extended by later include entries.
//
// The matrix's own keys are combined in the order of keys (first key varying
// slowest); keys the matrix has but keys does not list come after them in
// sorted order, and listed keys the matrix lacks are skipped. Include entries
// that become new combinations follow, in their order.
//
// A key's values must be a non-empty []any. An empty matrix (no keys, no
// include) gives one empty combination; a matrix of only include entries gives
// one combination per entry. More than 256 combinations is an error (GitHub's
// limit), and so is a matrix whose keys leave no combination after exclude and
// include.
//
// Values are compared as JSON values (numbers by value, whatever their Go type);
// the combinations share values with the matrix: treat them as read-only.
func ExpandMatrix(matrix map[string]any, keys []string) ([]map[string]any, error) {
	var dims []string
	for _, k := range keys {
		if _, ok := matrix[k]; ok && k != "include" && k != "exclude" && !slices.Contains(dims, k) {
			dims = append(dims, k)
		}
	}
	var rest []string
	for k := range matrix {
		if k != "include" && k != "exclude" && !slices.Contains(dims, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	dims = append(dims, rest...)

	rows := make([][]any, len(dims))
	product := 1
	for i, k := range dims {
		vs, ok := matrix[k].([]any)
		if !ok {
			return nil, fmt.Errorf("matrix key %q must be an array of values, not %T", k, matrix[k])
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("matrix key %q has no values", k)
		}
		rows[i] = vs
		product *= len(vs)
		if product > maxMatrixProduct {
			return nil, fmt.Errorf("the matrix has more than %d combinations before exclude; GitHub runs at most %d", maxMatrixProduct, MaxMatrixCombinations)
		}
	}
	exclude, err := entries(matrix, "exclude")
	if err != nil {
		return nil, err
	}
	include, err := entries(matrix, "include")
	if err != nil {
		return nil, err
	}

	var combos []map[string]any
	if len(dims) > 0 {
		idx := make([]int, len(dims)) // odometer over rows, last key fastest
		for {
			c := make(map[string]any, len(dims))
			for i, k := range dims {
				c[k] = rows[i][idx[i]]
			}
			if !slices.ContainsFunc(exclude, func(e map[string]any) bool { return excludes(e, c) }) {
				combos = append(combos, c)
			}
			i := len(idx) - 1
			for ; i >= 0; i-- {
				idx[i]++
				if idx[i] < len(rows[i]) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}

	// Original values of the base combinations; include may not overwrite them.
	base := len(combos)
	originals := make([]map[string]any, base)
	for i, c := range combos {
		originals[i] = maps.Clone(c)
	}
	for _, e := range include {
		added := false
		for i := range base {
			if !fits(e, originals[i]) {
				continue
			}
			for k, v := range e {
				if _, orig := originals[i][k]; !orig {
					combos[i][k] = v
				}
			}
			added = true
		}
		if !added {
			combos = append(combos, maps.Clone(e))
		}
		if len(combos) > MaxMatrixCombinations {
			break
		}
	}

	switch {
	case len(combos) > MaxMatrixCombinations:
		return nil, fmt.Errorf("the matrix has more than %d combinations; GitHub's limit is %d jobs per matrix", MaxMatrixCombinations, MaxMatrixCombinations)
	case len(combos) == 0 && len(dims) > 0:
		return nil, errors.New("the matrix has no combinations: exclude removes every one")
	case len(combos) == 0:
		return []map[string]any{{}}, nil
	}
	return combos, nil
}

// entries returns matrix[key] as a list of objects.
func entries(matrix map[string]any, key string) ([]map[string]any, error) {
	v, ok := matrix[key]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("matrix %s must be an array of objects, not %T", key, v)
	}
	out := make([]map[string]any, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("matrix %s[%d] must be an object, not %T", key, i, e)
		}
		out = append(out, m)
	}
	return out, nil
}

// excludes reports whether exclude entry e removes combination c: every key of e
// is in c with an equal value. An empty entry removes nothing.
func excludes(e, c map[string]any) bool {
	if len(e) == 0 {
		return false
	}
	for k, v := range e {
		cv, ok := c[k]
		if !ok || !equalValues(v, cv) {
			return false
		}
	}
	return true
}

// fits reports whether include entry e can be added to a combination with the
// given original values: it gives no original key another value.
func fits(e, originals map[string]any) bool {
	for k, v := range e {
		if ov, ok := originals[k]; ok && !equalValues(v, ov) {
			return false
		}
	}
	return true
}

// equalValues compares decoded YAML/JSON values; numbers compare by value.
func equalValues(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		b, ok := b.(string)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, equalValues)
	case map[string]any:
		b, ok := b.(map[string]any)
		return ok && maps.EqualFunc(a, b, equalValues)
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
