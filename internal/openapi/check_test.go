package openapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// testing.TB must keep satisfying TB, or no test could call CheckRoutes.
var _ TB = testing.TB(nil)

// recorder is a TB that keeps what CheckRoutes reports.
type recorder struct{ errors []string }

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func noop(http.ResponseWriter, *http.Request) {}

// ordersRouter registers routes the ways the services do: plain, in a
// group with middleware, with a regexp parameter, a trailing slash, and in
// a subrouter.
func ordersRouter() chi.Router {
	r := chi.NewRouter()
	r.Get("/healthz", noop)
	r.Group(func(r chi.Router) {
		r.Use(func(next http.Handler) http.Handler { return next })
		r.Get("/orders", noop)
		r.With(func(next http.Handler) http.Handler { return next }).Post("/orders/{id:[0-9]{1,19}}/cancel/", noop)
		r.Route("/admin", func(r chi.Router) {
			r.Get("/orders/{id}", noop)
		})
	})
	return r
}

// doc returns a document with the given "METHOD /path" operations.
func doc(routes ...string) []byte {
	paths := map[string][]string{}
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		paths[path] = append(paths[path], fmt.Sprintf(`"%s": {"responses": {"200": {"description": "ok"}}}`, strings.ToLower(method)))
	}
	var items []string
	for path, ops := range paths {
		items = append(items, fmt.Sprintf(`"%s": {%s}`, path, strings.Join(ops, ", ")))
	}
	return []byte(`{"openapi": "3.0.3", "paths": {` + strings.Join(items, ", ") + `}}`)
}

func TestCheckRoutesPassesWhenDocumentAndRouterAgree(t *testing.T) {
	var rec recorder
	CheckRoutes(&rec, ordersRouter(), doc("GET /healthz", "GET /orders/", "POST /orders/{id}/cancel", "GET /admin/orders/{id}"))
	if len(rec.errors) > 0 {
		t.Errorf("CheckRoutes failed:\n%s", strings.Join(rec.errors, "\n"))
	}
}

func TestCheckRoutesListsEveryRouteMissingOnEitherSide(t *testing.T) {
	var rec recorder
	CheckRoutes(&rec, ordersRouter(), doc("GET /healthz", "GET /orders", "POST /orders/{orderId}/cancel", "DELETE /admin/orders/{id}", "GET /readyz"))

	want := []string{
		"the OpenAPI document does not describe these routes of the router:\n\tGET /admin/orders/{id}\n\tPOST /orders/{id}/cancel",
		"the router does not serve these routes of the OpenAPI document:\n\tDELETE /admin/orders/{id}\n\tGET /readyz\n\tPOST /orders/{orderId}/cancel",
	}
	if got := strings.Join(rec.errors, "\n---\n"); got != strings.Join(want, "\n---\n") {
		t.Errorf("CheckRoutes reported\n%s\nwant\n%s", got, strings.Join(want, "\n---\n"))
	}
}

func TestCheckRoutesFailsOnADocumentWithoutPaths(t *testing.T) {
	var rec recorder
	CheckRoutes(&rec, ordersRouter(), []byte(`{"openapi": "3.0.3"}`))
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "no paths object") {
		t.Errorf("CheckRoutes reported %q, want that the document has no paths", rec.errors)
	}
}

func TestNormaliseMakesChiPatternsAndOpenAPIPathsComparable(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/", "/"},
		{"//", "/"},
		{"/orders", "/orders"},
		{"/orders/", "/orders"},
		{"/orders/{id}", "/orders/{id}"},
		{"/orders/{id:[0-9]+}", "/orders/{id}"},
		{"/orders/{id:[0-9]{1,19}}/cancel/", "/orders/{id}/cancel"},
		{"/pay-orders/biz/{bizOrderNo}/close", "/pay-orders/biz/{bizOrderNo}/close"},
		{"/a/{x}/b/{y:\\d{4}}", "/a/{x}/b/{y}"},
	}
	for _, tt := range tests {
		if got := normalise(tt.path); got != tt.want {
			t.Errorf("normalise(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
