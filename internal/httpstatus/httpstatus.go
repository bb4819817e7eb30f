// Package httpstatus remembers the status code a handler wrote, for the
// middlewares that report it: metrics count by it, traces record it.
package httpstatus

import "net/http"

// Writer is w that remembers the status code written through it: 200
// unless the handler wrote another before its first byte.
type Writer struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// NewWriter wraps w.
func NewWriter(w http.ResponseWriter) *Writer {
	return &Writer{ResponseWriter: w, status: http.StatusOK}
}

// Status is the status code the handler wrote.
func (w *Writer) Status() int { return w.status }

// WriteHeader remembers the first code written, the one the client gets.
func (w *Writer) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sends b; writing the body first fixes the status at 200.
func (w *Writer) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
