package openapi

import (
	"net/http"
	"strings"
	"testing"
)

// responsesDoc uses every keyword Responses knows, on the shapes the
// services' documents give them.
const responsesDoc = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/things/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
      "get": {"responses": {
        "200": {"description": "a thing", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
        "404": {"description": "none", "content": {"application/json": {"schema": {"allOf": [
          {"$ref": "#/components/schemas/Error"},
          {"type": "object", "properties": {"code": {"type": "string", "enum": ["thing_not_found"]}}}]}}}},
        "5XX": {"description": "broken", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
      }}
    },
    "/things/{id}/close": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
      "post": {"responses": {
        "200": {"description": "closed", "content": {"application/json": {"schema": {"oneOf": [
          {"$ref": "#/components/schemas/Thing"}, {"$ref": "#/components/schemas/Closure"}]}}}},
        "204": {"description": "nothing to close"}
      }}
    },
    "/things/special/close": {"post": {"responses": {"200": {"description": "text", "content": {"text/plain": {}}}}}},
    "/odd": {"get": {"responses": {"200": {"description": "odd", "content": {"application/json": {"schema": {"type": "string", "not": {}}}}}}}}
  },
  "components": {"schemas": {
    "Error": {"type": "object", "required": ["code", "message"], "properties": {
      "code": {"type": "string", "pattern": "^[a-z_]+$"}, "message": {"type": "string"}}},
    "Thing": {"type": "object", "required": ["id", "kind", "at", "ref", "tags", "size"], "properties": {
      "id": {"type": "integer", "format": "int64", "minimum": 1},
      "kind": {"type": "string", "enum": ["a", "b"]},
      "at": {"type": "string", "format": "date-time", "nullable": true},
      "ref": {"type": "string", "format": "uuid"},
      "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
      "size": {"type": "integer", "format": "int32", "maximum": 100},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "strict": {"type": "object", "additionalProperties": false, "properties": {"x": {"type": "boolean"}}}}},
    "Closure": {"type": "object", "required": ["id", "status"], "properties": {
      "id": {"type": "integer"}, "status": {"type": "integer", "enum": [2]}}}
  }}
}`

const thing = `{"id":7,"kind":"a","at":"2026-12-04T18:00:00.5Z","ref":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tags":["x"],"size":3}`

func TestResponsesPassWhatTheDocumentDescribesAndNameEveryDrift(t *testing.T) {
	r, err := NewResponses([]byte(responsesDoc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		status             int
		contentType, body  string
		want               []string // in the error; none: no error
	}{
		{"a documented body", "GET", "/things/7", 200, "application/json", thing, nil},
		{"null where nullable, maps and closed objects as documented", "GET", "/things/7", 200, "application/json; charset=utf-8",
			strings.Replace(thing, `"2026-12-04T18:00:00.5Z"`, `null,"labels":{"a":"b"},"strict":{"x":true}`, 1), nil},
		{"a field renamed", "GET", "/things/7", 200, "application/json", strings.Replace(thing, `"kind"`, `"type"`, 1),
			[]string{`required property "kind" is missing`, `property "type" is not in the document`}},
		{"a field added", "GET", "/things/7", 200, "application/json", strings.Replace(thing, `{`, `{"extra":1,`, 1),
			[]string{`property "extra" is not in the document`}},
		{"a number as a string", "GET", "/things/7", 200, "application/json", strings.Replace(thing, `"id":7`, `"id":"7"`, 1),
			[]string{`body.id: "7" is not a number`}},
		{"a fraction for an integer", "GET", "/things/7", 200, "application/json", strings.Replace(thing, `"id":7`, `"id":7.5`, 1),
			[]string{`body.id: 7.5 is not an int64`}},
		{"out of bounds", "GET", "/things/7", 200, "application/json",
			strings.NewReplacer(`"id":7`, `"id":0`, `"size":3`, `"size":101`, `["x"]`, `["x","y","z"]`).Replace(thing),
			[]string{"below minimum", "above maximum", "more than maxItems"}},
		{"formats and enums", "GET", "/things/7", 200, "application/json",
			strings.NewReplacer(`"a"`, `"c"`, `.5Z`, ``, `1b4e`, `zz`).Replace(thing),
			[]string{`"c" is not one of`, "not an RFC 3339 date-time", "not a UUID"}},
		{"null where not nullable", "GET", "/things/7", 200, "application/json", strings.Replace(thing, `"kind":"a"`, `"kind":null`, 1),
			[]string{"body.kind: null"}},
		{"additionalProperties", "GET", "/things/7", 200, "application/json",
			strings.Replace(thing, `{`, `{"labels":{"a":1},"strict":{"y":true},`, 1),
			[]string{`body.labels.a: 1 is not a string`, `property "y" is not allowed`}},
		{"an error code the status does not list", "GET", "/things/7", 404, "application/json", `{"code":"gone","message":"m"}`,
			[]string{`"gone" is not one of ["thing_not_found"]`}},
		{"an error code the status lists", "GET", "/things/7", 404, "application/json", `{"code":"thing_not_found","message":"m"}`, nil},
		{"a status range", "GET", "/things/7", 503, "application/json", `{"code":"down","message":"m"}`, nil},
		{"an undocumented status", "GET", "/things/7", 409, "application/json", `{"code":"x","message":"m"}`,
			[]string{"status 409 is not documented"}},
		{"an undocumented media type", "GET", "/things/7", 200, "text/plain", thing,
			[]string{"Content-Type text/plain is not documented"}},
		{"not JSON", "GET", "/things/7", 200, "application/json", `{"id":`, []string{"not JSON"}},
		{"oneOf: the first", "POST", "/things/7/close", 200, "application/json", thing, nil},
		{"oneOf: the second", "POST", "/things/7/close", 200, "application/json", `{"id":7,"status":2}`, nil},
		{"oneOf: neither", "POST", "/things/7/close", 200, "application/json", `{"id":7,"status":3}`,
			[]string{"matches 0 of the oneOf schemas"}},
		{"no content, no body", "POST", "/things/7/close", 204, "", "", nil},
		{"a body where none is documented", "POST", "/things/7/close", 204, "application/json", "{}",
			[]string{"a body, where the document describes none"}},
		{"a literal segment wins over a parameter", "POST", "/things/special/close", 200, "text/plain", "closed", nil},
		{"a keyword the check does not know", "GET", "/odd", 200, "application/json", `"x"`, []string{`"not", which this check does not know`}},
		{"a route the document lacks is the router's", "GET", "/nowhere", 404, "text/plain", "404 page not found", nil},
		{"a method the document lacks is the router's", "DELETE", "/things/7", 405, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.contentType != "" {
				header.Set("Content-Type", tt.contentType)
			}
			err := r.Check(tt.method, tt.path, tt.status, header, []byte(tt.body))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want no drift", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check = nil, want a drift naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}
