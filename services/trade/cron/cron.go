// Package cron runs the trade service's fallback on a robfig/cron schedule:
// each tick cancels the orders that timed out (closing their pay orders
// first), asks pay about the orders still unpaid after a grace period and
// about the refunds still waiting after it.
package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/paytrade/paytrade/services/trade"
)

// Config tunes the fallback.
type Config struct {
	Spec    string        // when to tick, in cron syntax or @every [@every 20s]
	Grace   time.Duration // an unpaid order younger than this is not asked about yet
	Timeout time.Duration // an order unpaid this long after creation is cancelled
	Batch   int           // orders read per query
	Logger  *slog.Logger
}

// Locker runs a function unless another process holds the same named
// lock; the postgres Store is one, with a PostgreSQL advisory lock.
type Locker interface {
	Exclusively(ctx context.Context, name string, fn func(ctx context.Context) error) (ran bool, err error)
}

// lockName keeps two trade replicas from running the same tick twice.
const lockName = "fallback-tick"

// Stats count the fallback's work since start.
type Stats struct {
	Runs, Skipped, Failed, OrdersPaid, OrdersClosed, Discrepancies int64
	Refunded, RefundsRejected                                      int64
}

// Fallback is the scheduled fallback.
type Fallback struct {
	svc   *trade.Service
	lock  Locker
	cfg   Config
	log   *slog.Logger
	sched robfig.Schedule

	runs, skipped, failed, paid, closed, discrepancies, refunded, refundsRejected atomic.Int64

	mu     sync.Mutex
	cron   *robfig.Cron
	cancel context.CancelFunc
}

// New returns a fallback of svc, or an error if cfg.Spec does not parse.
func New(svc *trade.Service, lock Locker, cfg Config) (*Fallback, error) {
	sched, err := robfig.ParseStandard(cfg.Spec)
	if err != nil {
		return nil, fmt.Errorf("parse fallback schedule %q: %w", cfg.Spec, err)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fallback{svc: svc, lock: lock, cfg: cfg, sched: sched, log: log.With("component", "fallback")}, nil
}

// Start schedules the ticks; ctx bounds every tick. A tick never overlaps
// the previous one: a tick still running when the next is due makes the
// next one skip (SkipIfStillRunning), and a panicking tick is logged, not
// fatal (Recover).
func (f *Fallback) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	logger := cronLogger{f.log}
	c := robfig.New(robfig.WithChain(robfig.Recover(logger), robfig.SkipIfStillRunning(logger)), robfig.WithLogger(logger))
	c.Schedule(f.sched, robfig.FuncJob(func() { _, _ = f.Tick(ctx) }))
	c.Start()
	f.mu.Lock()
	f.cron, f.cancel = c, cancel
	f.mu.Unlock()
	f.log.Info("fallback scheduled", "spec", f.cfg.Spec, "grace", f.cfg.Grace, "timeout", f.cfg.Timeout)
}

// Stop stops scheduling, cuts short a running tick and waits for it.
func (f *Fallback) Stop() {
	f.mu.Lock()
	c, cancel := f.cron, f.cancel
	f.mu.Unlock()
	if c == nil {
		return
	}
	cancel()
	<-c.Stop().Done()
}

// Tick runs the fallback once, now, unless another replica is running one.
func (f *Fallback) Tick(ctx context.Context) (trade.FallbackReport, error) {
	var closed, checked, refunds trade.FallbackReport
	ran, err := f.lock.Exclusively(ctx, lockName, func(ctx context.Context) error {
		// Each pass runs whatever the one before met: a timeout pass that
		// fails must not keep paid orders from being found.
		var errs []error
		var err error
		if closed, err = f.svc.CloseExpired(ctx, f.cfg.Timeout, f.cfg.Batch); err != nil {
			errs = append(errs, fmt.Errorf("close expired orders: %w", err))
		}
		if checked, err = f.svc.CheckUnpaid(ctx, f.cfg.Grace, f.cfg.Batch); err != nil {
			errs = append(errs, fmt.Errorf("check unpaid orders at pay: %w", err))
		}
		if refunds, err = f.svc.CheckRefunds(ctx, f.cfg.Grace, f.cfg.Batch); err != nil {
			errs = append(errs, fmt.Errorf("check requested refunds at pay: %w", err))
		}
		return errors.Join(errs...)
	})
	if !ran && err == nil {
		f.skipped.Add(1)
		f.log.Debug("fallback tick skipped: another replica is running one")
		return trade.FallbackReport{}, nil
	}
	report := trade.FallbackReport{
		Checked:       checked.Checked,
		Paid:          checked.Paid,
		Discrepancies: checked.Discrepancies,
		Closed:        closed.Closed,
		PaidInstead:   closed.PaidInstead,
		Failed:        closed.Failed + checked.Failed + refunds.Failed,
		BackingOff:    closed.BackingOff + checked.BackingOff,

		RefundsChecked:  refunds.RefundsChecked,
		Refunded:        refunds.Refunded,
		RefundsRejected: refunds.RefundsRejected,
	}
	f.runs.Add(1)
	f.paid.Add(int64(report.Paid + report.PaidInstead))
	f.closed.Add(int64(report.Closed))
	f.discrepancies.Add(int64(report.Discrepancies))
	f.refunded.Add(int64(report.Refunded))
	f.refundsRejected.Add(int64(report.RefundsRejected))
	if err != nil {
		f.failed.Add(1)
		f.log.Warn("fallback tick failed; the next tick tries again", "err", err, "report", report)
		return report, err
	}
	if report != (trade.FallbackReport{Checked: report.Checked, RefundsChecked: report.RefundsChecked, BackingOff: report.BackingOff}) {
		f.log.Info("fallback tick settled orders", "report", report)
	}
	return report, nil
}

// Stats returns the counts since start.
func (f *Fallback) Stats() Stats {
	return Stats{
		Runs: f.runs.Load(), Skipped: f.skipped.Load(), Failed: f.failed.Load(),
		OrdersPaid: f.paid.Load(), OrdersClosed: f.closed.Load(), Discrepancies: f.discrepancies.Load(),
		Refunded: f.refunded.Load(), RefundsRejected: f.refundsRejected.Load(),
	}
}

// cronLogger adapts slog to robfig/cron's logger.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
