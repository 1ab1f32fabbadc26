package expr

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// filtered is the array an object filter (`a.*`) produces. Further property
// access and indexing apply to each of its elements rather than to the array
// itself, as in GitHub's runner.
type filtered []any

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case float64:
		return kindNumber
	case string:
		return kindString
	case []any, filtered:
		return kindArray
	default:
		return kindObject
	}
}

func isPrimitive(v any) bool { return kindOf(v) <= kindString }

// asArray returns the elements of an array value.
func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case filtered:
		return a, true
	}
	return nil, false
}

// norm converts a Go value to the JSON-like form the evaluator works on. It is
// shallow: containers' elements are converted when they are read.
func norm(v any) any {
	switch x := v.(type) {
	case nil, bool, float64, string, []any, map[string]any, filtered:
		return v
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case uint32:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return string(x)
		}
		return f
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return a
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m
	}
	return normReflect(reflect.ValueOf(v))
}

func normReflect(rv reflect.Value) any {
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return norm(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil
		}
		a := make([]any, rv.Len())
		for i := range a {
			a[i] = rv.Index(i).Interface()
		}
		return a
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return jsonRoundTrip(rv.Interface())
		}
		if rv.IsNil() {
			return nil
		}
		m := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			m[it.Key().String()] = it.Value().Interface()
		}
		return m
	case reflect.Struct:
		return jsonRoundTrip(rv.Interface())
	}
	return nil
}

func jsonRoundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// lookup finds key in m ignoring case, as GitHub's dictionaries do. An exact
// match wins; among keys differing only in case the smallest one is used so
// that the result does not depend on map order.
func lookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return norm(v), true
	}
	found := ""
	ok := false
	for k := range m {
		if foldEqual(k, key) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	if !ok {
		return nil, false
	}
	return norm(m[found]), true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// upper is the case folding used for every string comparison (GitHub compares
// strings with .NET's OrdinalIgnoreCase, which upper-cases each character).
func upper(s string) string { return strings.ToUpper(s) }

func foldEqual(a, b string) bool { return a == b || upper(a) == upper(b) }

// Truthy reports whether v counts as true in a condition: false, 0, -0, "",
// null and NaN are falsy; everything else, including empty arrays and
// objects, is truthy.
func Truthy(v any) bool {
	switch x := norm(v).(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	}
	return true
}

// String converts v to a string the way GitHub does when it interpolates a
// value or passes it to format(): null is "", booleans are "true"/"false",
// numbers are printed with up to 15 significant digits (see formatNumber),
// arrays are "Array" and objects "Object".
func String(v any) string {
	switch x := norm(v).(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return formatNumber(x)
	case string:
		return x
	case []any, filtered:
		return "Array"
	}
	return "Object"
}

// formatNumber prints f like GitHub's runner, which uses .NET's "G15" format:
// integers without a decimal point, at most 15 significant digits, and
// exponent notation ("1E+15", "1E-05") when the exponent is below -4 or at
// least 15. NaN and the infinities print as "NaN", "Infinity" and
// "-Infinity". Negative zero prints as "0" (as in GitHub's own
// actions/languageservices evaluator; .NET itself would print "-0").
func formatNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	// Go's 'g' switches to exponent notation on the same thresholds as .NET's
	// G format; only the letter's case differs.
	return strings.ToUpper(strconv.FormatFloat(f, 'g', 15, 64))
}

// toNumber converts a value to a number for comparison: null is 0, booleans
// 1 and 0, strings are parsed (see parseNumber), arrays and objects are NaN.
func toNumber(v any) float64 {
	switch x := v.(type) {
	case nil:
		return 0
	case bool:
		if x {
			return 1
		}
		return 0
	case float64:
		return x
	case string:
		return parseNumber(x)
	}
	return math.NaN()
}

// parseNumber follows GitHub's runner: surrounding whitespace is ignored, an
// empty string is 0, a decimal number with optional sign, fraction and
// exponent is parsed as a double, and so are 0x… (hex) and 0o… (octal) 32-bit
// integers and the words Infinity and -Infinity; anything else is NaN.
func parseNumber(s string) float64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	if isDecimal(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !math.IsInf(f, 0) {
			return math.NaN()
		}
		return f
	}
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o') {
		b := 16
		if s[1] == 'o' {
			b = 8
		}
		u, err := strconv.ParseUint(s[2:], b, 32)
		if err != nil {
			return math.NaN()
		}
		return float64(int32(uint32(u)))
	}
	switch s {
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	return math.NaN()
}

// isDecimal matches [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// coerce brings two values to a common kind for comparison, like GitHub's
// runner (JavaScript's abstract equality, except that arrays and objects are
// never converted): number/string pairs compare as numbers, and null and
// booleans are converted to numbers when the other side is of another kind.
func coerce(a, b any) (any, any) {
	for {
		ka, kb := kindOf(a), kindOf(b)
		switch {
		case ka == kb:
			return a, b
		case ka == kindNumber && kb == kindString:
			return a, toNumber(b)
		case ka == kindString && kb == kindNumber:
			return toNumber(a), b
		case ka == kindBool || ka == kindNull:
			a = toNumber(a)
		case kb == kindBool || kb == kindNull:
			b = toNumber(b)
		default:
			return a, b
		}
	}
}

// Equal is GitHub's loose ==: values of different kinds are coerced to
// numbers (null and false are 0, true is 1, strings are parsed, arrays and
// objects never equal a value of another kind), NaN equals nothing, strings
// are compared ignoring case, and arrays and objects are equal only when they
// are the same instance.
func Equal(a, b any) bool {
	return equal(norm(a), norm(b))
}

func equal(a, b any) bool {
	a, b = coerce(a, b)
	if kindOf(a) != kindOf(b) {
		return false
	}
	switch x := a.(type) {
	case nil:
		return true
	case bool:
		return x == b.(bool)
	case float64:
		return x == b.(float64) // false when either is NaN
	case string:
		return foldEqual(x, b.(string))
	}
	return sameInstance(a, b)
}

// sameInstance reports whether two arrays or two objects are the same value
// (not a copy). Two empty arrays cannot be told apart and count as the same.
func sameInstance(a, b any) bool {
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	if ra.Kind() != rb.Kind() {
		return false
	}
	switch ra.Kind() {
	case reflect.Map, reflect.Slice:
		return ra.Pointer() == rb.Pointer() && ra.Len() == rb.Len()
	}
	return false
}

// compare returns -1, 0 or 1 for a < b, a == b, a > b after coercion, and ok
// false when the values are not ordered (NaN, arrays, objects, nulls).
func compare(a, b any) (int, bool) {
	a, b = coerce(a, b)
	if kindOf(a) != kindOf(b) {
		return 0, false
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0, true
		case y:
			return -1, true
		}
		return 1, true
	case float64:
		y := b.(float64)
		switch {
		case math.IsNaN(x) || math.IsNaN(y):
			return 0, false
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case string:
		return strings.Compare(upper(x), upper(b.(string))), true
	}
	return 0, false
}

// writeJSON writes v the way GitHub's toJSON does: two-space indentation,
// `"key": value`, "[]" and "{}" for empty containers, numbers as String
// prints them. Object keys are sorted (GitHub keeps insertion order, which a
// Go map does not have).
func writeJSON(b *strings.Builder, v any, depth int) {
	switch x := norm(v).(type) {
	case nil:
		b.WriteString("null")
	case bool, float64:
		b.WriteString(String(x))
	case string:
		writeJSONString(b, x)
	case []any:
		writeJSONArray(b, x, depth)
	case filtered:
		writeJSONArray(b, x, depth)
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{")
		for i, k := range sortedKeys(x) {
			if i > 0 {
				b.WriteString(",")
			}
			newline(b, depth+1)
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSON(b, x[k], depth+1)
		}
		newline(b, depth)
		b.WriteString("}")
	default:
		b.WriteString("{}")
	}
}

func writeJSONArray(b *strings.Builder, a []any, depth int) {
	if len(a) == 0 {
		b.WriteString("[]")
		return
	}
	b.WriteString("[")
	for i, e := range a {
		if i > 0 {
			b.WriteString(",")
		}
		newline(b, depth+1)
		writeJSON(b, e, depth+1)
	}
	newline(b, depth)
	b.WriteString("]")
}

func newline(b *strings.Builder, depth int) {
	b.WriteByte('\n')
	for range depth {
		b.WriteString("  ")
	}
}

const hexDigits = "0123456789abcdef"

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\u0085', '\u2028', '\u2029':
			b.WriteString(`\u`)
			b.WriteByte(hexDigits[r>>12&0xf])
			b.WriteByte(hexDigits[r>>8&0xf])
			b.WriteByte(hexDigits[r>>4&0xf])
			b.WriteByte(hexDigits[r&0xf])
		default:
			if r < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[r>>4])
				b.WriteByte(hexDigits[r&0xf])
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
