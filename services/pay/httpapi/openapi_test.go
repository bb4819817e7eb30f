package httpapi

import (
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/openapi/openapitest"
)

// The handler has no service behind it: only its route table is read.
func TestOpenAPIDocumentDescribesExactlyTheRoutesAndIsServed(t *testing.T) {
	h := NewHandler(nil, Config{Auth: auth.NewAuthenticator([]byte("test-secret"))})
	openapitest.CheckService(t, h, openAPIDoc, "services/pay/httpapi/openapi.json")
}
