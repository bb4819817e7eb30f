// Package memo shares the result of an expensive call among the callers
// of a short period: what an unauthenticated probe asks for (a database
// ping, a count over a table) then costs its dependency one call a period,
// however many callers ask.
package memo

import (
	"context"
	"sync"
	"time"
)

// Func is a call whose result is shared for a period, errors included: a
// dependency that is down is not asked again by every caller either.
type Func[T any] struct {
	period time.Duration
	call   func(context.Context) (T, error)

	mu       sync.Mutex
	at       time.Time     // when the shared result was made
	value    T             // the shared result
	err      error         // the shared result's error
	inFlight chan struct{} // closed when the call under way ends; nil if none
}

// New returns a Func that runs call at most once a period, at most once at
// a time, and hands its result to every caller in between. call gets a
// context that no single caller's end cancels: it bounds itself.
func New[T any](period time.Duration, call func(context.Context) (T, error)) *Func[T] {
	return &Func[T]{period: period, call: call}
}

// Get returns the result of a call made within the period, or waits for
// the call under way, or makes one. It returns early with ctx's error if
// ctx ends first.
func (f *Func[T]) Get(ctx context.Context) (T, error) {
	f.mu.Lock()
	if !f.at.IsZero() && time.Since(f.at) < f.period {
		v, err := f.value, f.err
		f.mu.Unlock()
		return v, err
	}
	wait := f.inFlight
	if wait == nil {
		wait = make(chan struct{})
		f.inFlight = wait
		go f.run(context.WithoutCancel(ctx), wait)
	}
	f.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value, f.err
}

// run makes the call and shares its result, then wakes every waiter.
func (f *Func[T]) run(ctx context.Context, done chan struct{}) {
	v, err := f.call(ctx)
	f.mu.Lock()
	f.value, f.err, f.at, f.inFlight = v, err, time.Now(), nil
	f.mu.Unlock()
	close(done)
}
