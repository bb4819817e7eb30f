package httpserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"
)

// A flood of /metrics and /readyz requests without a token reaches their
// handlers no faster than the gate's rate, after a burst of as many: the
// rest wait in line, and what would wait longer than opsMaxWait is refused
// 429 ops_busy at once. /healthz, which costs nothing, is not gated.
func TestAFloodOfOperationalRequestsIsServedNoFasterThanTheGateLetsIt(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls []time.Time
	)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls = append(calls, time.Now())
		mu.Unlock()
		_, _ = io.WriteString(w, "paytrade_up 1\n")
	})
	srv := httptest.NewServer(NewRouter(Ops{Metrics: metrics}))
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0}}
	t.Cleanup(client.CloseIdleConnections)

	// More than the burst and two seconds' turns together.
	const flood = 3*opsRate + opsRate*int(opsMaxWait/time.Second)
	start := time.Now()
	statuses := make(chan int, flood)
	var wg sync.WaitGroup
	for range flood {
		wg.Go(func() {
			res, err := client.Get(srv.URL + "/metrics")
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK]+count[http.StatusTooManyRequests] != flood || count[http.StatusTooManyRequests] == 0 {
		t.Errorf("answers %v, want every one 200 or 429, some 429", count)
	}
	// However the requests arrived, no more reached the handler by any
	// moment than the burst and the turns since the first.
	sort.Slice(calls, func(i, j int) bool { return calls[i].Before(calls[j]) })
	for i, at := range calls {
		if allowed := opsRate + int(at.Sub(start)*opsRate/time.Second) + 1; i+1 > allowed {
			t.Fatalf("%d requests reached /metrics %v after the flood began, want at most %d", i+1, at.Sub(start), allowed)
		}
	}

	res, err := client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz after the flood: %d, want 200", res.StatusCode)
	}
	t.Logf("%v in %v", count, time.Since(start).Round(time.Millisecond))
}
