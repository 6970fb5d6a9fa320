package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// jsonItem is a key (and value) in JSON output. Bytes that are valid UTF-8
// appear as strings in "key" and "value"; others as base64 in "key_b64"
// and "value_b64".
type jsonItem struct {
	Key      *string `json:"key,omitempty"`
	KeyB64   *string `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
}

// newJSONItem returns the JSON form of key and, if withValue, value.
func newJSONItem(key, value []byte, withValue bool) jsonItem {
	var it jsonItem
	it.Key, it.KeyB64 = jsonBytes(key)
	if withValue {
		it.Value, it.ValueB64 = jsonBytes(value)
	}
	return it
}

// jsonBytes returns b as a string if it is valid UTF-8, else as base64.
func jsonBytes(b []byte) (text, b64 *string) {
	s := string(b)
	if utf8.Valid(b) {
		return &s, nil
	}
	s = base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// printable returns b as is when it is printable UTF-8 without tabs or
// line breaks, else Go-quoted ("a\nb"), so that text output keeps one item
// per line. Use --json for exact bytes.
func printable(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) || (len(s) > 0 && s[0] == '"') {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// maxShownKey is how many bytes of a key messages quote.
const maxShownKey = 64

// shownKey quotes key for a message: whole when short, else its first
// maxShownKey bytes and its length, so that a hostile key cannot fill a
// terminal or a log.
func shownKey(key string) string {
	if len(key) <= maxShownKey {
		return strconv.Quote(key)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(key[:maxShownKey]), len(key))
}
