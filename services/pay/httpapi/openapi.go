package httpapi

import _ "embed"

// openAPIDoc describes every route in routes.go and is served at
// GET /openapi.json; a test fails when the two disagree.
//
//go:embed openapi.json
var openAPIDoc []byte
