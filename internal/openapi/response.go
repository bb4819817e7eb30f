package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Responses checks responses against the operations of one OpenAPI 3.0
// document: the status must be documented, the media type too, and a JSON
// body must match its schema. The schemas are read as a subset of JSON
// Schema — the keywords the services' documents use — and strictly: an
// object may hold only the properties its schema (with its allOf) names,
// unless additionalProperties says otherwise, so a field renamed or added
// without the document fails as surely as one removed. A keyword outside the
// subset is an error, never silently passed.
type Responses struct {
	v     *validator
	paths []documentedPath
}

// documentedPath is one path item of the document, its template split.
type documentedPath struct {
	segments []string // "{id}" for a parameter
	item     map[string]any
}

// NewResponses reads doc, which must pass Validate.
func NewResponses(doc []byte) (*Responses, error) {
	if err := Validate(doc); err != nil {
		return nil, err
	}
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	r := &Responses{v: &validator{root: root}}
	for path, node := range root["paths"].(map[string]any) {
		item, _ := r.v.deref(node).(map[string]any)
		r.paths = append(r.paths, documentedPath{segments: strings.Split(strings.Trim(path, "/"), "/"), item: item})
	}
	return r, nil
}

// Check reports how the response to method and path (a request's URL path)
// drifts from the document; nil when it does not. A request the document
// has no operation for is not checked: CheckRoutes keeps the routes and the
// document in step, and what no route serves is the router's to answer.
func (r *Responses) Check(method, path string, status int, header http.Header, body []byte) error {
	op, at := r.operation(method, path)
	if op == nil {
		return nil
	}
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	response, found := responses[code]
	if !found {
		code = code[:1] + "XX"
		response, found = responses[code]
	}
	if !found {
		code = "default"
		response, found = responses[code]
	}
	if !found {
		return fmt.Errorf("%s: status %d is not documented", at, status)
	}
	at += ", response " + code
	content, _ := r.v.deref(response).(map[string]any)["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s: a body, where the document describes none", at)
		}
		return nil
	}
	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("%s: Content-Type %q: %w", at, header.Get("Content-Type"), err)
	}
	media, found := content[mediaType].(map[string]any)
	if !found {
		return fmt.Errorf("%s: Content-Type %s is not documented (want one of %s)", at, mediaType, strings.Join(sortedKeys(content), ", "))
	}
	schema, found := media["schema"]
	if !found || !isJSON(mediaType) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		return fmt.Errorf("%s: the body is not JSON: %w", at, err)
	}
	s := &schemaCheck{v: r.v}
	s.value(value, schema, "body", false)
	if len(s.problems) > 0 {
		return fmt.Errorf("%s, %s: the body does not match the schema:\n\t%s\nbody: %s",
			at, mediaType, strings.Join(s.problems, "\n\t"), body)
	}
	return nil
}

// operation finds the documented operation for method and path, preferring
// the template with the most literal segments ("/pay-orders/biz/{n}" over
// "/pay-orders/{id}/close"), and names it for messages.
func (r *Responses) operation(method, path string) (map[string]any, string) {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLiterals := -1, -1
	for i, p := range r.paths {
		if literals, ok := p.match(segments); ok && literals > bestLiterals {
			if _, has := p.item[strings.ToLower(method)]; has {
				best, bestLiterals = i, literals
			}
		}
	}
	if best < 0 {
		return nil, ""
	}
	p := r.paths[best]
	op, _ := p.item[strings.ToLower(method)].(map[string]any)
	return op, method + " /" + strings.Join(p.segments, "/")
}

// match reports whether segments fit p's template, and how many of them
// matched a literal.
func (p documentedPath) match(segments []string) (literals int, ok bool) {
	if len(segments) != len(p.segments) {
		return 0, false
	}
	for i, s := range p.segments {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
		case s == segments[i]:
			literals++
		default:
			return 0, false
		}
	}
	return literals, true
}

func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// schemaCheck collects how one value fails one schema.
type schemaCheck struct {
	v        *validator
	problems []string
}

func (s *schemaCheck) fail(at, format string, args ...any) {
	s.problems = append(s.problems, at+": "+fmt.Sprintf(format, args...))
}

// The keywords the check reads, and those that only annotate.
var (
	checkedKeywords = []string{"$ref", "type", "nullable", "enum", "format", "minimum", "maximum",
		"minLength", "maxLength", "pattern", "items", "minItems", "maxItems",
		"properties", "required", "additionalProperties", "allOf", "oneOf", "anyOf"}
	annotations = []string{"description", "example", "examples", "default", "title", "readOnly", "writeOnly", "deprecated"}
)

// value checks value against schema; at names value for messages. Inside
// an allOf a member's object may hold the properties of its siblings: the
// allOf as a whole is what is closed.
func (s *schemaCheck) value(value, node any, at string, inAllOf bool) {
	schema, ok := s.v.deref(node).(map[string]any)
	if !ok {
		s.fail(at, "the schema is not an object")
		return
	}
	for _, key := range sortedKeys(schema) {
		if !slices.Contains(checkedKeywords, key) && !slices.Contains(annotations, key) {
			s.fail(at, "the schema uses %q, which this check does not know", key)
		}
	}
	if value == nil {
		if schema["nullable"] != true && !s.allowsNull(schema) {
			s.fail(at, "null, where the schema is not nullable")
		}
		return
	}
	for _, member := range list(schema["allOf"]) {
		s.value(value, member, at, true)
	}
	if members := list(schema["oneOf"]); len(members) > 0 {
		if n := s.matching(value, members, at); n != 1 {
			s.fail(at, "matches %d of the oneOf schemas, want exactly 1", n)
		}
	}
	if members := list(schema["anyOf"]); len(members) > 0 && s.matching(value, members, at) == 0 {
		s.fail(at, "matches none of the anyOf schemas")
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return sameJSON(e, value) }) {
		s.fail(at, "%s is not one of %s", show(value), show(enum))
	}
	switch t, _ := schema["type"].(string); t {
	case "":
	case "object":
		s.object(value, schema, at, inAllOf)
	case "array":
		s.array(value, schema, at)
	case "string":
		s.string(value, schema, at)
	case "integer", "number":
		s.number(value, schema, at, t)
	case "boolean":
		if _, ok := value.(bool); !ok {
			s.fail(at, "%s is not a boolean", show(value))
		}
	default:
		s.fail(at, "the schema's type %q is not an OpenAPI 3.0 type", t)
	}
}

// allowsNull reports whether an allOf member makes the schema nullable, as
// a "$ref plus nullable" is written in OpenAPI 3.0.
func (s *schemaCheck) allowsNull(schema map[string]any) bool {
	for _, member := range list(schema["allOf"]) {
		if m, ok := s.v.deref(member).(map[string]any); ok && m["nullable"] == true {
			return true
		}
	}
	return false
}

// matching counts the members value matches.
func (s *schemaCheck) matching(value any, members []any, at string) int {
	n := 0
	for _, member := range members {
		alone := &schemaCheck{v: s.v}
		alone.value(value, member, at, false)
		if len(alone.problems) == 0 {
			n++
		}
	}
	return n
}

func (s *schemaCheck) object(value any, schema map[string]any, at string, inAllOf bool) {
	obj, ok := value.(map[string]any)
	if !ok {
		s.fail(at, "%s is not an object", show(value))
		return
	}
	for _, name := range list(schema["required"]) {
		if name, _ := name.(string); name != "" {
			if _, found := obj[name]; !found {
				s.fail(at, "required property %q is missing", name)
			}
		}
	}
	properties, _ := schema["properties"].(map[string]any)
	additional, hasAdditional := schema["additionalProperties"]
	known := s.known(schema)
	for _, name := range sortedKeys(obj) {
		if p, found := properties[name]; found {
			s.value(obj[name], p, at+"."+name, false)
			continue
		}
		switch {
		case known[name]: // an allOf member's, checked there
		case hasAdditional && additional == false:
			s.fail(at, "property %q is not allowed (additionalProperties: false)", name)
		case hasAdditional && additional != true:
			s.value(obj[name], additional, at+"."+name, false)
		case !hasAdditional && !inAllOf:
			s.fail(at, "property %q is not in the document", name)
		}
	}
}

// known returns the property names schema and its allOf members declare.
func (s *schemaCheck) known(schema map[string]any) map[string]bool {
	names := map[string]bool{}
	var add func(node any, depth int)
	add = func(node any, depth int) {
		m, ok := s.v.deref(node).(map[string]any)
		if !ok || depth > 16 {
			return
		}
		if properties, ok := m["properties"].(map[string]any); ok {
			for name := range properties {
				names[name] = true
			}
		}
		for _, member := range list(m["allOf"]) {
			add(member, depth+1)
		}
	}
	add(schema, 0)
	return names
}

func (s *schemaCheck) array(value any, schema map[string]any, at string) {
	items, ok := value.([]any)
	if !ok {
		s.fail(at, "%s is not an array", show(value))
		return
	}
	if n, ok := bound(schema, "minItems"); ok && float64(len(items)) < n {
		s.fail(at, "%d items, fewer than minItems %v", len(items), n)
	}
	if n, ok := bound(schema, "maxItems"); ok && float64(len(items)) > n {
		s.fail(at, "%d items, more than maxItems %v", len(items), n)
	}
	if itemSchema, ok := schema["items"]; ok {
		for i, item := range items {
			s.value(item, itemSchema, at+"["+strconv.Itoa(i)+"]", false)
		}
	}
}

func (s *schemaCheck) string(value any, schema map[string]any, at string) {
	str, ok := value.(string)
	if !ok {
		s.fail(at, "%s is not a string", show(value))
		return
	}
	length := float64(len([]rune(str)))
	if n, ok := bound(schema, "minLength"); ok && length < n {
		s.fail(at, "%q is shorter than minLength %v", str, n)
	}
	if n, ok := bound(schema, "maxLength"); ok && length > n {
		s.fail(at, "%q is longer than maxLength %v", str, n)
	}
	if pattern, ok := schema["pattern"].(string); ok {
		re, err := regexp.Compile(pattern)
		if err != nil {
			s.fail(at, "pattern %q: %v", pattern, err)
		} else if !re.MatchString(str) {
			s.fail(at, "%q does not match pattern %q", str, pattern)
		}
	}
	switch format, _ := schema["format"].(string); format {
	case "date-time":
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			s.fail(at, "%q is not an RFC 3339 date-time", str)
		}
	case "uuid":
		if _, err := uuid.Parse(str); err != nil {
			s.fail(at, "%q is not a UUID", str)
		}
	}
}

func (s *schemaCheck) number(value any, schema map[string]any, at, kind string) {
	n, ok := value.(json.Number)
	if !ok {
		s.fail(at, "%s is not a number", show(value))
		return
	}
	f, err := n.Float64()
	if err != nil {
		s.fail(at, "%v: %v", n, err)
		return
	}
	if kind == "integer" {
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			s.fail(at, "%v is not an int64 integer", n)
			return
		}
		if schema["format"] == "int32" && (i < math.MinInt32 || i > math.MaxInt32) {
			s.fail(at, "%v is out of int32's range", n)
		}
	}
	if m, ok := bound(schema, "minimum"); ok && f < m {
		s.fail(at, "%v is below minimum %v", n, m)
	}
	if m, ok := bound(schema, "maximum"); ok && f > m {
		s.fail(at, "%v is above maximum %v", n, m)
	}
}

// show renders a value of a body, or of the document, as JSON.
func show(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// bound reads a numeric keyword of schema.
func bound(schema map[string]any, key string) (float64, bool) {
	n, ok := schema[key].(float64)
	return n, ok
}

// list reads an array keyword of schema.
func list(node any) []any {
	l, _ := node.([]any)
	return l
}

// sameJSON reports whether a, from the document, equals b, from a body
// decoded with UseNumber.
func sameJSON(a, b any) bool {
	switch b := b.(type) {
	case json.Number:
		f, err := b.Float64()
		af, isNumber := a.(float64)
		return err == nil && isNumber && af == f
	case string, bool:
		return a == b
	}
	return false // enums here list scalars only
}
