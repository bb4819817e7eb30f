// Package openapitest holds the checks every service runs on its OpenAPI
// document, so each service's test states only which handler and document.
package openapitest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/openapi"
)

// CheckService checks that doc (from file, for messages) is a valid OpenAPI
// 3 document, that h serves it at GET /openapi.json without a token, and
// that it documents exactly h's routes. h must be the chi router itself.
func CheckService(t *testing.T, h http.Handler, doc []byte, file string) {
	t.Helper()
	t.Run("every route is documented and every documented route exists", func(t *testing.T) {
		router, ok := h.(chi.Routes)
		if !ok {
			t.Fatalf("the handler is a %T, not a chi router, so its routes cannot be walked; "+
				"let this test reach the router under the wrapping", h)
		}
		openapi.CheckRoutes(t, router, doc)
	})
	t.Run("the document is valid", func(t *testing.T) {
		if err := openapi.Validate(doc); err != nil {
			t.Fatalf("%s:\n%v", file, err)
		}
	})
	t.Run("the document is served", func(t *testing.T) {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		res, err := http.Get(srv.URL + "/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /openapi.json without a token: status %d, want 200; body %s", res.StatusCode, body)
		}
		if mediaType, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mediaType != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", res.Header.Get("Content-Type"))
		}
		var served struct {
			OpenAPI string `json:"openapi"`
		}
		if err := json.Unmarshal(body, &served); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		if !strings.HasPrefix(served.OpenAPI, "3.") {
			t.Errorf("openapi = %q, want 3.x", served.OpenAPI)
		}
		if string(body) != string(doc) {
			t.Errorf("the served document is not %s", file)
		}
	})
}
