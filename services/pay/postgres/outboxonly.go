//go:build !faultinject

package postgres

import (
	"context"

	"github.com/paytrade/paytrade/internal/outbox"
)

// seedWiring is the outbox, the only wiring of this build: publishing after
// the commit exists in faultinject builds only.
type seedWiring struct{}

func (seedWiring) outboxed() bool                                   { return true }
func (seedWiring) publishAfterCommit(context.Context, outbox.Event) {}
