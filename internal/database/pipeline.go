package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pipeline is a transaction sent as batches of statements, one round trip
// each: BEGIN goes with the first batch and COMMIT with the last, so a
// transaction that reads what it decides on, then writes, costs two.
type Pipeline struct {
	conn       *pgxpool.Conn
	begun      bool
	committing bool
	done       bool
}

// errRolledBack is a COMMIT answered ROLLBACK: a statement before it in
// the transaction failed.
var errRolledBack = errors.New("the transaction was rolled back")

// Send sends b (after BEGIN, the first time) and lets read take its
// results in order, in one round trip.
func (p *Pipeline) Send(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	if !p.begun {
		queued := b.QueuedQueries
		b.QueuedQueries = nil
		b.Queue("BEGIN")
		b.QueuedQueries = append(b.QueuedQueries, queued...)
	}
	br := p.conn.SendBatch(ctx, b)
	err := p.readBegin(br)
	if err == nil {
		err = read(br)
	}
	return errors.Join(err, br.Close())
}

func (p *Pipeline) readBegin(br pgx.BatchResults) error {
	if p.begun {
		return nil
	}
	p.begun = true
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return nil
}

// Commit sends b and COMMIT in one round trip, and lets read take b's
// results. A statement of b that fails rolls everything back.
func (p *Pipeline) Commit(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	b.Queue("COMMIT")
	p.committing = true
	// The commit is never canceled with the request, as in InTx.
	return p.Send(context.WithoutCancel(ctx), b, func(br pgx.BatchResults) error {
		if err := read(br); err != nil {
			return err
		}
		p.done = true
		tag, err := br.Exec()
		switch {
		case err != nil:
			return fmt.Errorf("commit: %w", err)
		case tag.String() != "COMMIT":
			return fmt.Errorf("commit: %w", errRolledBack)
		}
		return nil
	})
}

// InPipeline runs fn, a transaction sent with Send and ended with Commit,
// on one connection of the pool. Like InTx, it rolls back when fn fails,
// runs fn again after a serialization failure or a deadlock, and reports a
// commit that broke off or did not reach the synchronous standby as
// ErrCommitOutcomeUnknown.
func InPipeline(ctx context.Context, pool *pgxpool.Pool, fn func(p *Pipeline) error) error {
	return retrying(ctx, func() error { return inPipelineOnce(ctx, pool, fn) })
}

func inPipelineOnce(ctx context.Context, pool *pgxpool.Pool, fn func(p *Pipeline) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	canceled := watchSyncWait(conn.Conn().PgConn())
	p := &Pipeline{conn: conn}
	err = fn(p)
	switch {
	case err == nil && !p.done:
		err = errors.New("pipeline: the transaction was not committed")
	case err != nil && p.committing && commitMayHaveHappened(err):
		return &commitUnknownError{cause: err}
	case err == nil && canceled.Load():
		return &commitUnknownError{cause: fmt.Errorf("commit: %w", ErrNotReplicated)}
	case err == nil:
		return nil
	}
	if p.begun && !p.committing {
		if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}
	return err
}
