package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
)

// TB is the part of testing.TB that CheckRoutes uses; *testing.T and
// *testing.B satisfy it. Declaring it here keeps package testing out of the
// services' binaries, which import this package for Handler.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// CheckRoutes is for tests: it fails tb unless doc, an OpenAPI 3 document,
// describes exactly the routes router serves, listing every served route the
// document lacks and every documented operation the router lacks. Routes
// compare by method and path, with chi's "{id}" and "{id:[0-9]+}" both equal
// to OpenAPI's "{id}" (parameter names must match) and trailing slashes
// ignored. A route registered for every method (chi's Handle) counts as one
// route per method, so document it per method or do not register it so.
// Swagger UI's routes (UIPath and below) are not the API and are skipped.
func CheckRoutes(tb TB, router chi.Routes, doc []byte) {
	tb.Helper()
	documented, err := documentedRoutes(doc)
	if err != nil {
		tb.Errorf("read the routes of the OpenAPI document: %v", err)
		return
	}
	served, err := servedRoutes(router)
	if err != nil {
		tb.Errorf("walk the router: %v", err)
		return
	}
	if missing := without(served, documented); len(missing) > 0 {
		tb.Errorf("the OpenAPI document does not describe these routes of the router:\n\t%s", strings.Join(missing, "\n\t"))
	}
	if missing := without(documented, served); len(missing) > 0 {
		tb.Errorf("the router does not serve these routes of the OpenAPI document:\n\t%s", strings.Join(missing, "\n\t"))
	}
}

// Operations returns, sorted, the operations doc (an OpenAPI 3 document)
// describes, as "METHOD /path" with path parameters by name only.
func Operations(doc []byte) ([]string, error) {
	routes, err := documentedRoutes(doc)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(routes)), nil
}

// documentedRoutes returns doc's operations as "METHOD /path".
func documentedRoutes(doc []byte) (map[string]bool, error) {
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	paths, ok := root["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("no paths object")
	}
	v := &validator{root: root}
	routes := map[string]bool{}
	for path, node := range paths {
		item, ok := v.deref(node).(map[string]any)
		if !ok {
			return nil, fmt.Errorf("path %q is not a path item object", path)
		}
		for _, method := range methods {
			if _, found := item[method]; found {
				routes[strings.ToUpper(method)+" "+normalise(path)] = true
			}
		}
	}
	return routes, nil
}

// servedRoutes returns router's routes as "METHOD /path".
func servedRoutes(router chi.Routes) (map[string]bool, error) {
	routes := map[string]bool{}
	err := chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == UIPath || strings.HasPrefix(route, UIPath+"/") {
			return nil
		}
		routes[method+" "+normalise(route)] = true
		return nil
	})
	return routes, err
}

// without returns, sorted, the routes in a that are not in b.
func without(a, b map[string]bool) []string {
	var missing []string
	for route := range a {
		if !b[route] {
			missing = append(missing, route)
		}
	}
	slices.Sort(missing)
	return missing
}

// normalise brings a chi pattern or an OpenAPI path template to one form:
// parameters by name only ("{id:[0-9]+}" → "{id}") and no trailing slash.
func normalise(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] != '{' {
			b.WriteByte(path[i])
			continue
		}
		// Copy the name, then skip a regexp up to the brace that closes the
		// parameter; the regexp may hold braces of its own ("\d{4}").
		depth, named := 0, false
		for ; i < len(path); i++ {
			c := path[i]
			switch {
			case c == '{':
				depth++
			case c == '}':
				depth--
			case c == ':' && depth == 1:
				named = true
			}
			if depth == 0 {
				b.WriteByte('}')
				break
			}
			if !named {
				b.WriteByte(c)
			}
		}
	}
	if trimmed := strings.TrimRight(b.String(), "/"); trimmed != "" {
		return trimmed
	}
	return "/"
}
