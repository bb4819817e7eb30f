package e2e

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/openapi"
	"github.com/paytrade/paytrade/internal/testenv"
)

// A rendered operation's summary in Swagger UI: its method, then its path.
var renderedOperation = regexp.MustCompile(`(?s)class="opblock-summary-method"[^>]*>([A-Z]+)<.*?data-path="([^"]+)"`)

func TestSwaggerUIAtDocsRendersEveryOperationOfBothServices(t *testing.T) {
	s := newSystem(t)
	trade := s.startTrade(t)
	for _, svc := range []*testenv.Process{s.pay, trade} {
		t.Run(svc.Name, func(t *testing.T) {
			var doc json.RawMessage
			client.MustCall(t, http.MethodGet, svc.BaseURL+"/openapi.json", "", "", http.StatusOK, &doc)
			want, err := openapi.Operations(doc)
			if err != nil || len(want) == 0 {
				t.Fatalf("the operations of %s/openapi.json: %v, %v", svc.BaseURL, want, err)
			}
			dom := testenv.DumpDOM(t, svc.BaseURL+openapi.UIPath, 15*time.Second)
			var got []string
			for _, m := range renderedOperation.FindAllStringSubmatch(dom, -1) {
				got = append(got, m[1]+" "+html.UnescapeString(m[2]))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("Swagger UI at %s%s rendered\n\t%s\nwant every operation of /openapi.json once:\n\t%s\npage:\n%s",
					svc.BaseURL, openapi.UIPath, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"), dom)
			}
		})
	}
}
