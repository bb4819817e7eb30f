package openapi

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// validDoc is a small document with each construct Validate follows: a
// path-level parameter by $ref, an operation-level parameter, a schema by
// $ref. The cases below break it one replacement at a time.
const validDoc = `{
  "openapi": "3.0.3",
  "info": {"title": "orders", "version": "1"},
  "paths": {
    "/orders/{id}": {
      "parameters": [{"$ref": "#/components/parameters/OrderID"}],
      "get": {
        "operationId": "getOrder",
        "responses": {"200": {"description": "the order", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}}
      }
    },
    "/orders": {
      "get": {
        "operationId": "listOrders",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "the orders"}}
      }
    }
  },
  "components": {
    "parameters": {"OrderID": {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}},
    "schemas": {"Order": {"type": "object"}}
  }
}`

func TestHandlerServesTheDocumentAsJSON(t *testing.T) {
	srv := httptest.NewServer(Handler([]byte(validDoc)))
	t.Cleanup(srv.Close)

	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", res.StatusCode, body)
	}
	if mediaType, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mediaType != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", res.Header.Get("Content-Type"))
	}
	if string(body) != validDoc {
		t.Errorf("body = %s, want the document unchanged", body)
	}
}

func TestHandlerServesACopyOfTheDocument(t *testing.T) {
	doc := []byte(validDoc)
	h := Handler(doc)
	copy(doc, "XXXX")

	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Body.String() != validDoc {
		t.Errorf("body = %.40s…, want the document as it was when the handler was made", rec.Body)
	}
}

func TestHandlerNeverServesAnInvalidDocument(t *testing.T) {
	doc := strings.Replace(validDoc, `"3.0.3"`, `"2.0"`, 1)
	rec := httptest.NewRecorder()
	Handler([]byte(doc))(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))

	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	if bytes.Contains(rec.Body.Bytes(), []byte("openapi")) {
		t.Errorf("body = %s, want an internal error and not the document", rec.Body)
	}
}

func TestValidateAcceptsAWellFormedDocument(t *testing.T) {
	if err := Validate([]byte(validDoc)); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateReportsWhatMakesADocumentUnusable(t *testing.T) {
	tests := []struct {
		name    string
		replace []string // old, new pairs applied to validDoc
		doc     string   // instead of validDoc, if set
		want    []string // each must appear in the error
	}{
		{name: "not JSON", doc: `{"openapi":`, want: []string{"not a JSON object"}},
		{name: "JSON null", doc: `null`, want: []string{"not a JSON object"}},
		{name: "JSON array", doc: `[]`, want: []string{"not a JSON object"}},
		{
			name:    "Swagger 2",
			replace: []string{`"openapi": "3.0.3"`, `"swagger": "2.0"`},
			want:    []string{"#/openapi: must be an OpenAPI 3 version"},
		},
		{
			name:    "no title",
			replace: []string{`"title": "orders", `, ``},
			want:    []string{"#/info/title: is required"},
		},
		{
			name:    "no paths",
			replace: []string{`"paths"`, `"routes"`},
			want:    []string{"#/paths: is required"},
		},
		{
			name:    "schema reference that does not resolve",
			replace: []string{`"#/components/schemas/Order"`, `"#/components/schemas/Ordr"`},
			want: []string{`#/paths/~1orders~1{id}/get/responses/200/content/application~1json/schema/$ref: ` +
				`"#/components/schemas/Ordr" does not resolve: no "Ordr"`},
		},
		{
			name:    "reference to another file",
			replace: []string{`"#/components/schemas/Order"`, `"order.json#/Order"`},
			want:    []string{`"order.json#/Order" is not a reference inside this document`},
		},
		{
			name:    "parameter reference that does not resolve",
			replace: []string{`"#/components/parameters/OrderID"`, `"#/components/parameters/OrderId"`},
			want: []string{
				`#/paths/~1orders~1{id}/parameters/0/$ref: "#/components/parameters/OrderId" does not resolve`,
				`#/paths/~1orders~1{id}/get: path parameter "id" is in the path but not declared`,
			},
		},
		{
			name:    "operation without responses",
			replace: []string{`{"200": {"description": "the orders"}}`, `{}`},
			want:    []string{"#/paths/~1orders/get/responses: must hold at least one response"},
		},
		{
			name:    "path parameter not declared",
			replace: []string{`"parameters": [{"$ref": "#/components/parameters/OrderID"}],`, ``},
			want:    []string{`#/paths/~1orders~1{id}/get: path parameter "id" is in the path but not declared`},
		},
		{
			name:    "path parameter not required",
			replace: []string{`"required": true`, `"required": false`},
			want:    []string{`path parameter "id" must be required`, `path parameter "id" is in the path but not declared`},
		},
		{
			name:    "path parameter declared but not in the path",
			replace: []string{`"in": "query"`, `"in": "path", "required": true`},
			want:    []string{`#/paths/~1orders/get: path parameter "limit" is declared but not in the path`},
		},
		{
			name:    "path parameter in the path under another name",
			replace: []string{`"/orders/{id}"`, `"/orders/{orderId}"`},
			want:    []string{`path parameter "orderId" is in the path but not declared`, `path parameter "id" is declared but not in the path`},
		},
		{
			name:    "unbalanced braces",
			replace: []string{`"/orders/{id}"`, `"/orders/{id"`},
			want:    []string{`path "/orders/{id" has a { without its }`},
		},
		{
			name:    "parameter without location",
			replace: []string{`"in": "query", `, ``},
			want:    []string{`#/paths/~1orders/get/parameters/0: parameter "limit" needs "in"`},
		},
		{
			name:    "operationId used twice",
			replace: []string{`"listOrders"`, `"getOrder"`},
			want:    []string{`#/paths/~1orders~1{id}/get/operationId: "getOrder" is already the operationId of #/paths/~1orders/get`},
		},
		{
			name:    "every problem at once",
			replace: []string{`"title": "orders", `, ``, `"listOrders"`, `"getOrder"`},
			want:    []string{"#/info/title: is required", `"getOrder" is already the operationId`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if doc == "" {
				doc = validDoc
				for i := 0; i < len(tt.replace); i += 2 {
					if !strings.Contains(doc, tt.replace[i]) {
						t.Fatalf("the test is wrong: %q is not in the document", tt.replace[i])
					}
					doc = strings.Replace(doc, tt.replace[i], tt.replace[i+1], 1)
				}
			}
			err := Validate([]byte(doc))
			if err == nil {
				t.Fatal("Validate accepted the document")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}
