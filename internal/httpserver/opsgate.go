package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// The unauthenticated operational routes that cost work (/metrics renders
// every series, /readyz asks each dependency) are let through at most
// opsRate a second, with a burst of as many. A request past that waits for
// its turn, up to opsMaxWait; one that would wait longer is refused at once.
// Prometheus and a container's health check ask a few times a minute; a
// flood of them waits in line instead of taking the CPU payments need.
const (
	opsRate    = 100
	opsMaxWait = 2 * time.Second
)

// ErrOpsBusy is the refusal of an operational request past the gate's line.
var ErrOpsBusy = problem.New(problem.Busy, "ops_busy",
	"too many operational requests; ask again later").WithRetryAfter(time.Second)

// gate spaces requests opsRate a second apart on average: each takes the
// next free turn (a reservation), and waits until it comes.
type gate struct {
	interval time.Duration // between turns
	burst    time.Duration // how far behind now the next turn may lag: the burst
	maxWait  time.Duration

	mu   sync.Mutex
	next time.Time // the next free turn
}

func newGate(perSecond int, maxWait time.Duration) *gate {
	interval := time.Second / time.Duration(perSecond)
	return &gate{interval: interval, burst: interval * time.Duration(perSecond), maxWait: maxWait}
}

// turn reserves the next turn and waits for it. It reports false, having
// reserved nothing, when the turn is further off than maxWait, and false
// too when ctx ends first.
func (g *gate) turn(ctx context.Context) bool {
	g.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-g.burst); g.next.Before(earliest) {
		g.next = earliest
	}
	wait := g.next.Sub(now)
	if wait > g.maxWait {
		g.mu.Unlock()
		return false
	}
	g.next = g.next.Add(g.interval)
	g.mu.Unlock()
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// middleware lets a request through on its turn, or refuses it 429
// ops_busy with Retry-After.
func (g *gate) middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !g.turn(r.Context()) {
				jsonhttp.Error(w, r, log, ErrOpsBusy)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
