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

// A Check tells whether a dependency can be used now and, when it can,
// facts worth reporting beside its "ok" (nil for none): which of a
// cluster's nodes it is on, for example.
type Check func(context.Context) (map[string]string, error)

// Reachable is the Check of a dependency that has nothing to say but yes
// or no.
func Reachable(probe func(context.Context) error) Check {
	return func(ctx context.Context) (map[string]string, error) {
		return nil, probe(ctx)
	}
}

// Ready answers 200 when every check passes within 2 s, and 503 otherwise,
// with each dependency's state ("ok" or "unavailable") by name, and the
// facts of those that are ok. The checks run at most once per
// ReadyPeriod, and at most once at a time: requests in between get the
// last round's answer.
func Ready(checks map[string]Check, log *slog.Logger) http.HandlerFunc {
	round := memo.New(ReadyPeriod, func(ctx context.Context) (readiness, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r := readiness{status: http.StatusOK, report: map[string]string{}}
		for name, check := range checks {
			facts, err := check(ctx)
			if err != nil {
				r.status = http.StatusServiceUnavailable
				r.report[name] = "unavailable"
				log.WarnContext(ctx, "not ready", "dependency", name, "err", err)
				continue
			}
			r.report[name] = "ok"
			for k, v := range facts {
				r.report[k] = v
			}
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
