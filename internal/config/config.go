// Package config reads typed settings from environment-style lookups,
// collecting every malformed value so a misconfigured service reports all of
// them at once at start-up instead of failing on the first.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Reader reads settings through getenv and remembers what it could not parse.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// NewReader returns a Reader over getenv, usually os.Getenv.
func NewReader(getenv func(string) string) *Reader {
	return &Reader{getenv: getenv}
}

// String returns the setting, or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

// Flag returns a boolean setting: "1" or "true" is true, unset, "0" or
// "false" is false.
func (r *Reader) Flag(name string) bool {
	switch v := r.getenv(name); v {
	case "1", "true":
		return true
	case "", "0", "false":
		return false
	default:
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want 1 or 0", name, v))
		return false
	}
}

// Int returns the setting as an integer of at least min, or def when unset.
func (r *Reader) Int(name string, def, min int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want an integer ≥ %d", name, v, min))
		return def
	}
	return n
}

// Float returns the setting as a number of at least min, or def when unset.
func (r *Reader) Float(name string, def, min float64) float64 {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want a number ≥ %g", name, v, min))
		return def
	}
	return f
}

// Duration returns the setting as a positive Go duration ("1s", "250ms"),
// or def when unset.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want a positive duration such as 500ms or 2s", name, v))
		return def
	}
	return d
}

// Unbuilt records a problem if name is set to anything but safe: a
// setting whose code this binary was built without, which it refuses
// rather than silently ignore.
func (r *Reader) Unbuilt(name, safe, build string) {
	if v := r.getenv(name); v != "" && v != safe {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: this binary is built without %s; only a -tags faultinject build (make chaos, make bench) reads it", name, v, build))
	}
}

// Fail records a problem found by the caller's own checks.
func (r *Reader) Fail(err error) {
	r.errs = append(r.errs, err)
}

// Err returns every problem found, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(r.errs...))
}
