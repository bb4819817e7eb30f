package reconcile

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// cursor reads a query's rows a page at a time through a server-side
// cursor of a transaction. Between pages the transaction's connection is
// free, so lookups run on the same snapshot while the cursor is open —
// which a streaming pgx.Rows, holding the connection, would not allow.
type cursor[T any] struct {
	tx       pgx.Tx
	fetch    string
	pageSize int
	scan     pgx.RowToFunc[T]
	page     []T
	pos      int  // the next row of page to return
	last     bool // page is the last the cursor has
}

// openCursor runs declare (DECLARE name NO SCROLL CURSOR FOR ...) and
// returns the cursor, to be read pageSize rows at a time.
func openCursor[T any](ctx context.Context, tx pgx.Tx, name, declare string, pageSize int, scan pgx.RowToFunc[T]) (*cursor[T], error) {
	if _, err := tx.Exec(ctx, declare); err != nil {
		return nil, fmt.Errorf("declare cursor %s: %w", name, err)
	}
	return &cursor[T]{
		tx:       tx,
		fetch:    fmt.Sprintf("FETCH FORWARD %d FROM %s", pageSize, name),
		pageSize: pageSize,
		scan:     scan,
	}, nil
}

// next returns the next row, or false when there are no more.
func (c *cursor[T]) next(ctx context.Context) (T, bool, error) {
	var zero T
	if c.pos == len(c.page) {
		if c.last {
			return zero, false, nil
		}
		rows, err := c.tx.Query(ctx, c.fetch)
		if err != nil {
			return zero, false, fmt.Errorf("%s: %w", c.fetch, err)
		}
		page, err := pgx.CollectRows(rows, c.scan)
		if err != nil {
			return zero, false, fmt.Errorf("%s: %w", c.fetch, err)
		}
		// A short page is the last: no round trip to learn that.
		c.page, c.pos, c.last = page, 0, len(page) < c.pageSize
		if len(page) == 0 {
			return zero, false, nil
		}
	}
	row := c.page[c.pos]
	c.pos++
	return row, true, nil
}
