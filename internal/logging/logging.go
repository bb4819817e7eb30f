// Package logging makes the JSON logger both services write to stdout.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger at level whose every line names service.
func New(w io.Writer, level slog.Level, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", service)
}

// WarnUnsafe says loudly, once at start-up, when a process runs with
// settings that only belong in a test or on a laptop.
func WarnUnsafe(log *slog.Logger, crashPoints map[string]bool, devSecret bool) {
	if len(crashPoints) > 0 {
		log.Warn("crash points armed: this process will kill itself on purpose", "points", crashPoints)
	}
	if devSecret {
		log.Warn("AUTH_JWT_SECRET is not set: using the development secret; set it anywhere but a laptop")
	}
}
