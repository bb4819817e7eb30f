// Package problem describes refusals that a caller can act on: a kind that
// says what went wrong in general, and a stable snake_case code that says
// exactly what. Domain packages declare their errors with it; the HTTP layer
// turns the kind into a status code, so the domain never speaks HTTP.
package problem

import (
	"errors"
	"time"
)

// Kind groups refusals that a caller handles the same way.
type Kind int

// The kinds of refusal.
const (
	Invalid       Kind = iota + 1 // the request itself is malformed or out of range
	Unauthorized                  // no valid credentials
	Forbidden                     // valid credentials, not allowed
	NotFound                      // no such thing, or not yours to see
	Conflict                      // the current state does not allow it
	Unprocessable                 // well-formed but contradicts an earlier request
	TooLarge                      // the request body is larger than allowed
	Unavailable                   // a service this one depends on did not answer; try again later
	Locked                        // refused for a while, whatever the request; try again after RetryAfter
	Busy                          // cannot be served now without waiting; try again after RetryAfter
)

// Error is a refusal with a machine-readable code and a human message.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// RetryAfter, when positive, is how long the caller should wait
	// before asking again (HTTP's Retry-After).
	RetryAfter time.Duration
}

// New returns a refusal of the given kind.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Invalidf returns an Invalid refusal with the code invalid_request.
func Invalidf(message string) *Error {
	return &Error{Kind: Invalid, Code: "invalid_request", Message: message}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// WithRetryAfter returns a copy of e that asks the caller to wait d.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// Is makes errors.Is match refusals by code, so a wrapped or copied refusal
// still matches the declared sentinel.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// As returns the refusal inside err, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
