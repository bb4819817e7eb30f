// Package strictjson reads event bodies strictly: one JSON object, bounded
// in size, nothing after it, every required field present. Unknown fields
// are allowed, so a publisher can add some without breaking its consumers.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Decode reads body into v: one JSON object of at most limit bytes with
// nothing after it.
func Decode(body []byte, limit int, v any) error {
	if len(body) > limit {
		return fmt.Errorf("body of %d bytes exceeds %d", len(body), limit)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	// A JSON null decodes into a struct without complaint.
	if bytes.TrimSpace(body)[0] != '{' {
		return errors.New("not a JSON object")
	}
	return nil
}

// Require reports the fields, by name, that present says are missing.
func Require(present map[string]bool) error {
	var missing []string
	for name, ok := range present {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("lacks %v", missing)
}
