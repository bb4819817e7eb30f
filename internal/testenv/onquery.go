package testenv

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// OnQuery is a pgx query tracer that calls Fn, once armed, the first time a
// statement holding Text starts, before it is sent: a test's way to change
// the database between what a request read and what it writes.
type OnQuery struct {
	Text  string
	Armed atomic.Bool
	Fn    func()
}

// TraceQueryStart calls Fn if q is armed and the statement holds Text.
func (q *OnQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, q.Text) && q.Armed.CompareAndSwap(true, false) {
		q.Fn()
	}
	return ctx
}

// TraceQueryEnd does nothing.
func (q *OnQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
