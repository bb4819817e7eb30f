package httpapi

import (
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/openapi/openapitest"
)

// The handler has no store behind it: only its route table is read.
func TestOpenAPIDocumentDescribesExactlyTheRoutesAndIsServed(t *testing.T) {
	h := NewHandler(nil, nil, Config{Auth: authtest.Dev().Authenticator(auth.AudienceTrade)})
	openapitest.CheckService(t, h, openAPIDoc, "services/trade/httpapi/openapi.json")
}
