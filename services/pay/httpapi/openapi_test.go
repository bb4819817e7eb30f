package httpapi

import (
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/openapi/openapitest"
)

// The handler has no service behind it: only its route table is read.
func TestOpenAPIDocumentDescribesExactlyTheRoutesAndIsServed(t *testing.T) {
	h := NewHandler(nil, Config{Auth: authtest.Dev().Authenticator(auth.AudiencePay)})
	openapitest.CheckService(t, h, openAPIDoc, "services/pay/httpapi/openapi.json")
}
