// Package health serves both services' liveness and readiness probes.
package health

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/memo"
)

// Live answers 200 while the process serves HTTP at all.
func Live() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Encode(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// ReadyPeriod is how long one round of readiness checks answers every
// /readyz: the probe is open to all, and a flood of it must cost the
// database one ping a period, not one a request.
const ReadyPeriod = time.Second

// readiness is the answer of one round of checks.
type readiness struct {
	status int
	report map[string]string
}

// Ready answers 200 when every check passes within 2 s, and 503 otherwise,
// with each dependency's state ("ok" or "unavailable") by name. The checks
// run at most once per ReadyPeriod, and at most once at a time: requests
// in between get the last round's answer.
func Ready(checks map[string]func(context.Context) error, log *slog.Logger) http.HandlerFunc {
	round := memo.New(ReadyPeriod, func(ctx context.Context) (readiness, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r := readiness{status: http.StatusOK, report: map[string]string{}}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				r.status = http.StatusServiceUnavailable
				r.report[name] = "unavailable"
				log.WarnContext(ctx, "not ready", "dependency", name, "err", err)
				continue
			}
			r.report[name] = "ok"
		}
		return r, nil
	})
	return func(w http.ResponseWriter, r *http.Request) {
		ready, err := round.Get(r.Context())
		if err != nil {
			return // the client went away
		}
		jsonhttp.Encode(w, ready.status, ready.report)
	}
}
