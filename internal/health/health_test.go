package health

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/testenv"
)

// /readyz is open to all and pings the database: a flood of it must cost
// the database one ping a ReadyPeriod, not one a request.
func TestAReadyzFloodPingsTheDatabaseOncePerReadyPeriod(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var pings atomic.Int64
	srv := httptest.NewServer(Ready(map[string]Check{
		"database": Reachable(func(ctx context.Context) error {
			pings.Add(1)
			return pool.Ping(ctx)
		}),
	}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 20 {
				res, err := srv.Client().Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				// 503 too is an answer (a ping slower than 2 s on a
				// loaded machine); what counts here is the pings.
				if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("/readyz = %d, want 200 or 503", res.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	periods := int64(time.Since(start)/ReadyPeriod) + 1
	if got := pings.Load(); got > periods {
		t.Fatalf("400 requests in %d ready period(s) pinged the database %d times; want at most once a period", periods, got)
	}
	t.Logf("400 requests, %d pings", pings.Load())
}
