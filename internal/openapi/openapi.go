// Package openapi serves a service's OpenAPI 3 document and checks it: that
// it is well formed (Validate) and, for tests, that it describes exactly the
// routes the service's router serves (CheckRoutes) and every response they
// see (Responses).
package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/paytrade/paytrade/internal/jsonhttp"
)

// Handler serves doc, an OpenAPI 3 document, as application/json. doc is
// validated once, here. A document that fails Validate is never served: every
// request gets a 500 and the reason is logged, because a wrong contract is
// worse than none. The services' tests call Validate on their documents, so
// that answer should never reach a client.
func Handler(doc []byte) http.HandlerFunc {
	if err := Validate(doc); err != nil {
		err = fmt.Errorf("serve OpenAPI document: %w", err)
		return func(w http.ResponseWriter, r *http.Request) {
			jsonhttp.Error(w, r, nil, err)
		}
	}
	// A copy, so the caller cannot change what is served behind our back.
	body := slices.Clone(doc)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// A failed write means the client is gone; there is nobody to tell.
		_, _ = w.Write(body)
	}
}

// The operations a path item can hold, as OpenAPI 3.0 spells them.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Validate reports, all at once, what makes doc an unusable OpenAPI 3
// document: not a JSON object, no "openapi" 3.x version, no info title or
// version, a $ref that does not resolve inside doc, an operation without
// responses, a parameter without name or location, a path parameter that the
// path template and the declared parameters do not agree on, or an
// operationId used twice. It is not a full schema validation; it catches what
// a hand-edited document gets wrong.
func Validate(doc []byte) error {
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return fmt.Errorf("openapi document is not a JSON object: %w", err)
	}
	if root == nil {
		return errors.New("openapi document is not a JSON object")
	}
	v := &validator{root: root}
	if version, _ := root["openapi"].(string); !strings.HasPrefix(version, "3.") {
		v.fail("#/openapi", "must be an OpenAPI 3 version such as \"3.0.3\", not %q", root["openapi"])
	}
	info, _ := root["info"].(map[string]any)
	for _, field := range []string{"title", "version"} {
		if s, _ := info[field].(string); s == "" {
			v.fail("#/info/"+field, "is required")
		}
	}
	v.refs(root, "#")
	v.paths()
	return errors.Join(v.problems...)
}

// validator collects the problems of one document.
type validator struct {
	root         map[string]any
	problems     []error
	operationIDs map[string]string // operationId → where it was first seen
}

func (v *validator) fail(at, format string, args ...any) {
	v.problems = append(v.problems, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
}

// refs checks that every $ref in node resolves inside the document; at is
// node's JSON pointer, for messages.
func (v *validator) refs(node any, at string) {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"]; ok {
			if s, isString := ref.(string); !isString {
				v.fail(at+"/$ref", "must be a string")
			} else if _, err := v.resolve(s); err != nil {
				v.fail(at+"/$ref", "%v", err)
			}
		}
		for _, key := range sortedKeys(n) {
			v.refs(n[key], at+"/"+escape(key))
		}
	case []any:
		for i, item := range n {
			v.refs(item, at+"/"+strconv.Itoa(i))
		}
	}
}

// resolve returns what a local reference ("#/components/...") points to.
// Only local references are accepted: the document is served on its own, so
// anything it refers to must be inside it.
func (v *validator) resolve(ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#")
	if !ok || (pointer != "" && !strings.HasPrefix(pointer, "/")) {
		return nil, fmt.Errorf("%q is not a reference inside this document", ref)
	}
	var node any = v.root
	if pointer == "" {
		return node, nil
	}
	for _, token := range strings.Split(pointer[1:], "/") {
		token = strings.NewReplacer("~1", "/", "~0", "~").Replace(token)
		switch n := node.(type) {
		case map[string]any:
			next, found := n[token]
			if !found {
				return nil, fmt.Errorf("%q does not resolve: no %q", ref, token)
			}
			node = next
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(n) {
				return nil, fmt.Errorf("%q does not resolve: no index %q", ref, token)
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("%q does not resolve: %q is inside a scalar", ref, token)
		}
	}
	return node, nil
}

// deref follows node's $ref, if it has one, to what it points to. A broken
// reference has been reported by refs already, so it yields nil here.
func (v *validator) deref(node any) any {
	for range 32 { // a reference cycle must not hang the check
		n, ok := node.(map[string]any)
		if !ok {
			return node
		}
		ref, ok := n["$ref"].(string)
		if !ok {
			return node
		}
		target, err := v.resolve(ref)
		if err != nil {
			return nil
		}
		node = target
	}
	return nil
}

// paths checks every path item and its operations.
func (v *validator) paths() {
	paths, ok := v.root["paths"].(map[string]any)
	if !ok {
		v.fail("#/paths", "is required and must be an object")
		return
	}
	v.operationIDs = map[string]string{}
	for _, path := range sortedKeys(paths) {
		at := "#/paths/" + escape(path)
		item, ok := v.deref(paths[path]).(map[string]any)
		if !ok {
			v.fail(at, "must be a path item object")
			continue
		}
		template, err := templateParams(path)
		if err != nil {
			v.fail(at, "%v", err)
			continue
		}
		shared := v.pathParams(item["parameters"], at+"/parameters")
		operations := 0
		for _, method := range methods {
			if op, found := item[method]; found {
				operations++
				v.operation(op, at+"/"+method, template, shared)
			}
		}
		if operations == 0 {
			v.fail(at, "has no operations")
		}
	}
}

// operation checks one operation: its responses, its parameters against
// the path template and what the path item declares, its operationId.
func (v *validator) operation(node any, at string, template []string, shared map[string]bool) {
	op, ok := node.(map[string]any)
	if !ok {
		v.fail(at, "must be an operation object")
		return
	}
	if responses, _ := op["responses"].(map[string]any); len(responses) == 0 {
		v.fail(at+"/responses", "must hold at least one response")
	}
	if id, ok := op["operationId"].(string); ok {
		if first, seen := v.operationIDs[id]; seen {
			v.fail(at+"/operationId", "%q is already the operationId of %s", id, first)
		} else {
			v.operationIDs[id] = at
		}
	}
	declared := v.pathParams(op["parameters"], at+"/parameters")
	for name := range shared {
		declared[name] = true
	}
	for _, name := range template {
		if !declared[name] {
			v.fail(at, "path parameter %q is in the path but not declared as a required path parameter", name)
		}
	}
	for _, name := range sortedKeys(declared) {
		if !slices.Contains(template, name) {
			v.fail(at, "path parameter %q is declared but not in the path", name)
		}
	}
}

// pathParams checks a parameters list and returns the names of the
// required path parameters it declares.
func (v *validator) pathParams(node any, at string) map[string]bool {
	names := map[string]bool{}
	if node == nil {
		return names
	}
	list, ok := node.([]any)
	if !ok {
		v.fail(at, "must be an array")
		return names
	}
	for i, item := range list {
		p, ok := v.deref(item).(map[string]any)
		if !ok {
			continue // a broken $ref, reported by refs
		}
		pAt := at + "/" + strconv.Itoa(i)
		name, _ := p["name"].(string)
		in, _ := p["in"].(string)
		switch {
		case name == "":
			v.fail(pAt, "parameter needs a name")
		case !slices.Contains([]string{"query", "header", "path", "cookie"}, in):
			v.fail(pAt, "parameter %q needs \"in\": query, header, path or cookie", name)
		case in == "path" && p["required"] != true:
			v.fail(pAt, "path parameter %q must be required", name)
		case in == "path":
			names[name] = true
		}
	}
	return names
}

// templateParams returns the names of a path template's parameters, in
// order: "/orders/{id}" → ["id"].
func templateParams(path string) ([]string, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	var names []string
	rest := path
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return names, nil
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("path %q has a } without a {", path)
		}
		length := strings.IndexAny(rest[open+1:], "{}")
		if length < 0 || rest[open+1+length] != '}' {
			return nil, fmt.Errorf("path %q has a { without its }", path)
		}
		name := rest[open+1 : open+1+length]
		if name == "" || slices.Contains(names, name) {
			return nil, fmt.Errorf("path %q has an empty or repeated parameter {%s}", path, name)
		}
		names = append(names, name)
		rest = rest[open+1+length+1:]
	}
}

// escape makes key a JSON pointer token.
func escape(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// sortedKeys returns m's keys in order, so problems are reported in a
// stable order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
