package x402

import (
	"encoding/json"
	"reflect"
)

// TypeErrorText says what a JSON type error means in a buyer's terms: the
// expected type in words and what was found, never Go type names ("want a
// string, got a number").
func TypeErrorText(te *json.UnmarshalTypeError) string {
	return "want " + typeWords(te.Type) + ", got " + valueWords(te.Value)
}

func typeWords(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another type"
}

func valueWords(v string) string {
	switch v {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "true or false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "null":
		return "null"
	case "non-string":
		return "something else"
	}
	if len(v) > 7 && v[:7] == "number " {
		return "the number " + v[7:]
	}
	return v
}

// jsonValueKind names the kind of a JSON value as encoding/json does in
// UnmarshalTypeError.Value.
func jsonValueKind(raw []byte) string {
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\n' || raw[0] == '\r') {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return "non-string"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}
