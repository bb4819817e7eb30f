package e2e

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

// TestSwaggerUITryItOutAnswersFromTheAddressThePageWasOpenedAt presses
// "Try it out", then "Execute", on each service's page, opened at the
// address the service was given (a loopback IP and a port of the test's,
// not the defaults), and wants the service's real answer in the page:
// the request goes where the page came from, so the browser neither
// blocks it as cross-origin nor sends it to another port.
func TestSwaggerUITryItOutAnswersFromTheAddressThePageWasOpenedAt(t *testing.T) {
	s := newSystem(t)
	trade := s.startTrade(t)
	for _, svc := range []*testenv.Process{s.pay, trade} {
		t.Run(svc.Name, func(t *testing.T) {
			ctx := browser(t)
			const op = "#operations-operations-getReadiness"
			err := chromedp.Do(ctx,
				chromedp.Navigate(svc.BaseURL+openapi.UIPath),
				chromedp.Click(chromedp.CSS(op+" .opblock-summary")),
				chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
				chromedp.Click(chromedp.CSS(op+" .execute")),
			)
			if err != nil {
				t.Fatalf("Try it out, Execute on %s%s: %v", svc.BaseURL, openapi.UIPath, err)
			}
			status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table tr.response .response-col_status")))
			if err != nil {
				t.Fatalf("the answer on %s%s: %v", svc.BaseURL, openapi.UIPath, err)
			}
			body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table tr.response .response-col_description")))
			if err != nil {
				t.Fatalf("the answer's body on %s%s: %v", svc.BaseURL, openapi.UIPath, err)
			}
			status = strings.TrimSpace(status)
			if !strings.HasPrefix(status, "200") || !strings.Contains(body, `"database": "ok"`) {
				t.Fatalf("Try it out of GET /readyz at %s%s showed status %q, body:\n%s\nwant 200 and the service's readiness",
					svc.BaseURL, openapi.UIPath, status, body)
			}
		})
	}
}

// browser returns a context of a headless Chromium of this test's own
// (testenv.Chromium, testenv.ChromiumFlags) that chromedp drives: a tab
// that must be done within two minutes. The browser stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(testenv.Chromium(t)), chromedp.UserDataDir(t.TempDir())}
	for _, flag := range testenv.ChromiumFlags {
		opts = append(opts, chromedp.Flag(strings.TrimPrefix(flag, "--"), true))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}
