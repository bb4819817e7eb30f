package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// TestARefusedConnectionIsAnsweredAtOnceThenLeftUnreadAWhile sends two
// requests over one keep-alive connection. A refusal (401, 423, 429)
// arrives whole while the server still holds the connection, and the next
// request on it is answered only after the pause; an answer that is not a
// refusal holds nothing. The pause is long here so that a loaded machine
// cannot make it look short or the answer look late: every check is about
// order, or about a time that can only grow under load.
func TestARefusedConnectionIsAnsweredAtOnceThenLeftUnreadAWhile(t *testing.T) {
	t.Parallel()
	const pause = 3 * time.Second
	refusals := map[string]*problem.Error{
		"/busy":   problem.New(problem.Busy, "busy", "busy").WithRetryAfter(time.Second),
		"/locked": problem.New(problem.Locked, "locked", "locked").WithRetryAfter(time.Hour),
		"/token":  problem.New(problem.Unauthorized, "unauthorized", "invalid token"),
		"/ok":     nil,
	}
	for path, refusal := range refusals {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			t.Parallel()
			// held is closed once the middleware returns for the first
			// request, that is once the server lets go of the connection.
			held := make(chan struct{})
			var once sync.Once
			paused := httpserver.PauseAfterRefusalFor(pause)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if refusal != nil {
					jsonhttp.Error(w, r, nil, refusal)
					return
				}
				jsonhttp.Encode(w, http.StatusOK, map[string]string{"ok": "yes"})
			}))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				paused.ServeHTTP(w, r)
				once.Do(func() { close(held) })
			}))
			t.Cleanup(srv.Close)
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			t.Cleanup(client.CloseIdleConnections)

			start := time.Now()
			get(t, client, srv.URL+path, false)
			// The refusal itself is not delayed: it is read whole while the
			// server still holds the connection.
			if refusal != nil {
				select {
				case <-held:
					t.Fatalf("%s: the answer was read only after the server let go of the connection; want it at once", path)
				default:
				}
			}
			get(t, client, srv.URL+path, true)
			took := time.Since(start)
			if refusal != nil && took < pause {
				t.Errorf("%s: two requests on one connection took %v, want at least the pause, %v", path, took, pause)
			}
			if refusal == nil && took >= pause {
				t.Errorf("%s: two requests on one connection took %v, want no pause", path, took)
			}
		})
	}
}

// get asks for url and reads the whole answer, failing unless it is a JSON
// body and unless the connection was (or was not) reused as wantReused says.
func get(t *testing.T, client *http.Client, url string, wantReused bool) {
	t.Helper()
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !strings.HasSuffix(string(body), "}\n") {
		t.Fatalf("%s: body %q, %v; want it whole", url, body, err)
	}
	if reused != wantReused {
		t.Fatalf("%s: connection reused %v, want %v", url, reused, wantReused)
	}
}
