// Package jsonpath names where in a JSON document a decoding error is, with
// array indexes: encoding/json's UnmarshalTypeError.Field leaves them out
// ("containerDefinitions.memory", whichever container it was), and an error
// that names the field must say which one.
package jsonpath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// At returns the path of the JSON value in data that a decoder had read up
// to offset when it stopped there, as json.UnmarshalTypeError.Offset
// reports: "" when the walk cannot tell.
func At(data []byte, offset int64) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	path, _ := walk(dec, nil, "", func(p place) bool { return !p.isKey && dec.InputOffset() >= offset })
	return path
}

// TypeError describes a wrong JSON type in data: the value's full path and
// what it must be, in JSON's words ("a JSON number, not string") rather
// than Go's ("float64").
func TypeError(data []byte, te *json.UnmarshalTypeError) (path, problem string) {
	path = At(data, te.Offset)
	if path == "" {
		path = te.Field
	}
	return path, fmt.Sprintf("must be a JSON %s, not %s", jsonType(te.Type), te.Value)
}

func jsonType(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "value of another type"
}

// UnknownField returns the full path of the first object key named name in
// data that is not a field of the Go type t decodes into at that place, as
// json.Decoder.DisallowUnknownFields refuses it: the decoder's error names
// only the key ("unknown field \"path\""), not where it is. It returns name
// when the walk cannot tell.
func UnknownField(data []byte, t reflect.Type, name string) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if path, found := walk(dec, t, "", func(p place) bool { return p.isKey && !p.known && p.key == name }); found {
		return path
	}
	return name
}

// place is where a walk is: a value once its first token is read, or an
// object key before its value.
type place struct {
	path  string
	isKey bool
	key   string
	known bool // the key names a field of the type its object decodes into
}

// walk reads one value from dec, which sits at path and decodes into t
// (nil: any), and returns the path of the first place at which stop says
// so.
func walk(dec *json.Decoder, t reflect.Type, path string, stop func(place) bool) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	if stop(place{path: path}) {
		return path, true
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return "", false
			}
			key, _ := keyTok.(string)
			keyPath := key
			if path != "" {
				keyPath = path + "." + key
			}
			elem, known := memberType(t, key)
			if stop(place{path: keyPath, isKey: true, key: key, known: known}) {
				return keyPath, true
			}
			if p, found := walk(dec, elem, keyPath, stop); found {
				return p, true
			}
		}
		_, _ = dec.Token() // '}'
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if p, found := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i), stop); found {
				return p, true
			}
		}
		_, _ = dec.Token() // ']'
	}
	return "", false
}

// memberType is the type that key of an object decoding into t decodes
// into (nil: any), and whether t takes the key at all: only a struct
// refuses one.
func memberType(t reflect.Type, key string) (reflect.Type, bool) {
	switch {
	case t == nil:
		return nil, true
	case t.Kind() == reflect.Map:
		return t.Elem(), true
	case t.Kind() == reflect.Struct:
		return fieldByJSONName(t, key)
	}
	return nil, true
}

// fieldByJSONName finds the type of the field of struct t that key decodes
// into, matching names as encoding/json does: the tag name or the Go name,
// exactly or else case-insensitively, through embedded structs.
func fieldByJSONName(t reflect.Type, key string) (reflect.Type, bool) {
	var folded reflect.Type
	var visit func(t reflect.Type) (reflect.Type, bool)
	visit = func(t reflect.Type) (reflect.Type, bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			tagName, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && tagName == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					if found, ok := visit(ft); ok {
						return found, true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			fieldName := tagName
			if fieldName == "" {
				fieldName = f.Name
			}
			if fieldName == key {
				return f.Type, true
			}
			if folded == nil && strings.EqualFold(fieldName, key) {
				folded = f.Type
			}
		}
		return nil, false
	}
	if found, ok := visit(t); ok {
		return found, true
	}
	return folded, folded != nil
}
