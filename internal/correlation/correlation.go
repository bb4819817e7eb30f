// Package correlation carries one id from an HTTP request through the
// outbox row and the message it becomes to the consumer's log lines, so an
// operator can follow a payment across both services.
package correlation

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Header is the HTTP header that carries the id in and out.
const Header = "X-Correlation-Id"

// maxLen bounds an id taken from a caller.
const maxLen = 128

type key struct{}

// WithID returns ctx carrying id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// ID returns the id in ctx, or "".
func ID(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Middleware takes the caller's id from the header, or makes one, puts it in
// the request's context and echoes it in the response.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(Header)
		if id == "" || len(id) > maxLen {
			id = uuid.NewString()
		}
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(WithID(r.Context(), id)))
	})
}
