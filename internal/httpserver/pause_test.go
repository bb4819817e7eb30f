package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// TestARefusedConnectionIsAnsweredAtOnceThenLeftUnreadAWhile floods a
// handler over one keep-alive connection: each refusal (401, 423, 429)
// arrives at once, whole, but the next request on that connection is read
// only RefusedPause later; an answer that is not a refusal holds nothing.
func TestARefusedConnectionIsAnsweredAtOnceThenLeftUnreadAWhile(t *testing.T) {
	t.Parallel()
	refusals := map[string]*problem.Error{
		"/busy":   problem.New(problem.Busy, "busy", "busy").WithRetryAfter(time.Second),
		"/locked": problem.New(problem.Locked, "locked", "locked").WithRetryAfter(time.Hour),
		"/token":  problem.New(problem.Unauthorized, "unauthorized", "invalid token"),
	}
	srv := httptest.NewServer(httpserver.PauseAfterRefusal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := refusals[r.URL.Path]; ok {
			jsonhttp.Error(w, r, nil, p)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, map[string]string{"ok": "yes"})
	})))
	t.Cleanup(srv.Close)

	for _, path := range []string{"/busy", "/locked", "/token", "/ok"} {
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		const requests = 4
		start := time.Now()
		for i := range requests {
			sent := time.Now()
			res, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatalf("%s, request %d: %v", path, i+1, err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || !strings.HasSuffix(string(body), "}\n") {
				t.Fatalf("%s, request %d: body %q, %v; want it whole", path, i+1, body, err)
			}
			// The refusal itself is not delayed: the pause comes after it.
			if i == 0 {
				if took := time.Since(sent); took >= httpserver.RefusedPause {
					t.Errorf("%s: the first answer took %v, want it at once", path, took)
				}
			}
		}
		took := time.Since(start)
		paused := took >= (requests-1)*httpserver.RefusedPause
		if want := path != "/ok"; paused != want {
			t.Errorf("%s: %d requests on one connection took %v; paused %v, want %v", path, requests, took, paused, want)
		}
		client.CloseIdleConnections()
	}
}
