// Package health serves both services' liveness and readiness probes.
package health

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/paytrade/paytrade/internal/jsonhttp"
)

// Live answers 200 while the process serves HTTP at all.
func Live() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Encode(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// Ready answers 200 when every check passes within 2 s, and 503 otherwise,
// with each dependency's state ("ok" or "unavailable") by name.
func Ready(checks map[string]func(context.Context) error, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		report := map[string]string{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				report[name] = "unavailable"
				log.WarnContext(ctx, "not ready", "dependency", name, "err", err)
				continue
			}
			report[name] = "ok"
		}
		jsonhttp.Encode(w, status, report)
	}
}
