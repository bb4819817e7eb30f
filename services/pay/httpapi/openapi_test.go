package httpapi

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/openapi"
)

// newRouteTable returns the handler with every route and no service behind
// it: these tests read the route table and the document, never a pay order.
func newRouteTable() http.Handler {
	return NewHandler(nil, Config{Auth: auth.NewAuthenticator([]byte("test-secret"))})
}

func TestEveryRouteIsDocumentedAndEveryDocumentedRouteExists(t *testing.T) {
	h := newRouteTable()
	router, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("NewHandler returns a %T, not a chi router, so its routes cannot be walked; "+
			"let this test reach the router under the wrapping", h)
	}
	openapi.CheckRoutes(t, router, openAPIDoc)
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if err := openapi.Validate(openAPIDoc); err != nil {
		t.Fatalf("services/pay/httpapi/openapi.json:\n%v", err)
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	srv := httptest.NewServer(newRouteTable())
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
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	if string(body) != string(openAPIDoc) {
		t.Error("the served document is not openapi.json")
	}
}
