// Package jsonhttp holds the JSON request decoding and response encoding
// shared by both services' HTTP adapters.
package jsonhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/problem"
)

// MaxBodyBytes is the largest request body Decode accepts; every request
// this API takes is a handful of fields, so anything bigger is abuse.
const MaxBodyBytes = 64 << 10

// errorBody is what every error response carries.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func invalid(message string) *problem.Error {
	return problem.New(problem.Invalid, "invalid_json", message)
}

// Decode reads exactly one JSON object from r.Body into v, which must be a
// non-nil pointer. Anything a client could get wrong comes back as a
// *problem.Error: TooLarge ("body_too_large") past MaxBodyBytes, Invalid
// ("invalid_json") for everything else, with a short message saying what.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Body == nil {
		return invalid("request body is empty")
	}
	// Reading the whole (capped) body first lets us look at its first byte:
	// encoding/json silently accepts null for a struct, and we want to
	// refuse anything that is not an object.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return problem.New(problem.TooLarge, "body_too_large",
				fmt.Sprintf("request body must not exceed %d bytes", MaxBodyBytes))
		}
		// The client went away or stalled mid-body: its problem, not ours.
		return invalid("could not read the request body")
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return invalid("request body is empty")
	}
	if trimmed[0] != '{' {
		return invalid("request body must be a JSON object")
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("request body must contain a single JSON object and nothing after it")
	}
	return nil
}

// decodeError turns what encoding/json reports into a refusal a client can
// read; only a programming error (v not a pointer) stays unexpected.
func decodeError(err error) error {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return invalid(fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, strings.TrimPrefix(e.Error(), "json: ")))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("malformed JSON: body ends in the middle of a value")
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return invalid(typeMessage(e))
	}
	if _, ok := errors.AsType[*json.InvalidUnmarshalError](err); ok {
		return fmt.Errorf("decode request body: %w", err)
	}
	// encoding/json has no type for an unknown field; its message is
	// `json: unknown field "x"`, which is already what the client needs.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return invalid(msg)
	}
	return invalid("malformed JSON: " + msg)
}

// typeMessage says which field had the wrong type and what it should be.
func typeMessage(e *json.UnmarshalTypeError) string {
	field := e.Field
	if field == "" {
		field = "value"
	}
	if e.Type == nil {
		return field + " has the wrong type"
	}
	switch e.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isWholeNumber(e.Value) {
			return field + " is out of range"
		}
		return field + " must be an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isWholeNumber(e.Value) {
			return field + " is out of range"
		}
		return field + " must be a non-negative integer"
	case reflect.Float32, reflect.Float64:
		if strings.HasPrefix(e.Value, "number") {
			return field + " is out of range"
		}
		return field + " must be a number"
	case reflect.String:
		return field + " must be a string"
	case reflect.Bool:
		return field + " must be true or false"
	case reflect.Struct, reflect.Map:
		return field + " must be an object"
	case reflect.Slice, reflect.Array:
		return field + " must be an array"
	}
	return field + " has the wrong type"
}

// isWholeNumber reports whether an UnmarshalTypeError value such as
// "number 9223372036854775808" is an integer literal, which then failed
// only because it did not fit.
func isWholeNumber(value string) bool {
	n, ok := strings.CutPrefix(value, "number ")
	if !ok {
		return false
	}
	n = strings.TrimPrefix(n, "-")
	return n != "" && strings.Trim(n, "0123456789") == ""
}

// Encode writes v as JSON with the status and Content-Type application/json; charset=utf-8.
func Encode(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here (a channel, a cycle): answer
		// like any other unexpected error rather than a half-written body.
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Code: "internal", Message: "internal error"})
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	// With its length, the answer is whole once written, whatever the
	// handler does next (httpserver.PauseAfterRefusal).
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	// A failed write means the client is gone; there is nobody to tell.
	_, _ = w.Write(body)
}

// Error writes err as {"code","message"}: a *problem.Error, wrapped or not,
// with the status of its kind; a failure of the database (unreachable,
// read-only during a failover, a commit whose outcome is unknown) as 503
// with Retry-After, logged at Warn; anything else is unexpected, so it is
// logged once at Error level (to slog.Default if log is nil) and answered
// 500 without details.
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if log == nil {
		log = slog.Default()
	}
	p, ok := problem.As(err)
	if !ok {
		if p, ok = database.AsProblem(err); ok {
			log.WarnContext(r.Context(), "database failure", "method", r.Method, "path", r.URL.Path, "code", p.Code, "err", err)
		}
	}
	if ok {
		if p.RetryAfter > 0 {
			// Whole seconds, rounded up: never invite a retry too early.
			w.Header().Set("Retry-After", strconv.FormatInt(int64((p.RetryAfter+time.Second-1)/time.Second), 10))
		}
		Encode(w, Status(p.Kind), errorBody{Code: p.Code, Message: p.Message})
		return
	}
	log.ErrorContext(r.Context(), "unexpected error", "method", r.Method, "path", r.URL.Path, "err", err)
	Encode(w, http.StatusInternalServerError, errorBody{Code: "internal", Message: "internal error"})
}

// Status maps a problem kind to an HTTP status, 500 for a kind it does not know.
func Status(k problem.Kind) int {
	switch k {
	case problem.Invalid:
		return http.StatusBadRequest
	case problem.Unauthorized:
		return http.StatusUnauthorized
	case problem.Forbidden:
		return http.StatusForbidden
	case problem.NotFound:
		return http.StatusNotFound
	case problem.Conflict:
		return http.StatusConflict
	case problem.Unprocessable:
		return http.StatusUnprocessableEntity
	case problem.TooLarge:
		return http.StatusRequestEntityTooLarge
	case problem.Unavailable:
		return http.StatusServiceUnavailable
	case problem.Locked:
		return http.StatusLocked
	case problem.Busy:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// PathID reads a positive integer id from the URL path parameter name.
func PathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		return 0, problem.Invalidf(name + " must be a positive integer")
	}
	return id, nil
}
