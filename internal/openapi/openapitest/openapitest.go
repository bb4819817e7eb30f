// Package openapitest holds the checks every service runs on its OpenAPI
// document, so each service's test states only which handler and document,
// and the hooks that check every response a test sees against it: Checked
// around a handler, Transport in a client.
package openapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/httpstatus"
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

// Checked is h with every response it writes checked against the OpenAPI
// document h serves at /openapi.json: a response that drifts from the
// document fails tb. Serve it, not h, in a service's HTTP tests, so that
// every body they see is one the document describes.
func Checked(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET /openapi.json: status %d, body %s", rec.Code, rec.Body)
	}
	responses, err := openapi.NewResponses(rec.Body.Bytes())
	if err != nil {
		tb.Fatalf("read the served OpenAPI document: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &capture{Writer: httpstatus.NewWriter(w)}
		h.ServeHTTP(cw, r)
		if err := responses.Check(r.Method, r.URL.Path, cw.Status(), w.Header(), cw.body.Bytes()); err != nil {
			tb.Errorf("the response drifts from the OpenAPI document: %v", err)
		}
	})
}

// capture is a response writer that keeps a copy of the body.
type capture struct {
	*httpstatus.Writer
	body bytes.Buffer
}

func (c *capture) Write(b []byte) (int, error) {
	c.body.Write(b)
	return c.Writer.Write(b)
}

// Transport is base (http.DefaultTransport if nil) with every response
// checked against the OpenAPI document its service serves at
// /openapi.json, read once per host: a response that drifts from the
// document is returned as an error, for clients that have no test to fail,
// like one shared by a package's tests against the running binaries.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &checkingTransport{base: base, docs: map[string]*openapi.Responses{}}
}

type checkingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	docs map[string]*openapi.Responses // by scheme://host
}

func (t *checkingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err != nil || r.URL.Path == "/openapi.json" {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	responses, err := t.document(r)
	if err != nil {
		return nil, err
	}
	if err := responses.Check(r.Method, r.URL.Path, res.StatusCode, res.Header, body); err != nil {
		return nil, fmt.Errorf("the response drifts from the OpenAPI document: %w", err)
	}
	return res, nil
}

// document returns the checker for r's service, reading its document once.
func (t *checkingTransport) document(r *http.Request) (*openapi.Responses, error) {
	origin := r.URL.Scheme + "://" + r.URL.Host
	t.mu.Lock()
	defer t.mu.Unlock()
	if doc, ok := t.docs[origin]; ok {
		return doc, nil
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, origin+"/openapi.json", nil)
	if err != nil {
		return nil, err
	}
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("read the OpenAPI document of %s: %w", origin, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the OpenAPI document of %s: status %d, %v", origin, res.StatusCode, err)
	}
	doc, err := openapi.NewResponses(data)
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document of %s: %w", origin, err)
	}
	t.docs[origin] = doc
	return doc, nil
}
