package trade

import (
	"sync"
	"time"
)

// orderBackoff spaces out the fallback's attempts at an order that keeps
// failing: the first failure is tried again at the next run, as the
// promise "within one cron period" wants; after that the order waits
// first, then twice as long each time, up to max. So an order that always
// fails costs the runs little and holds up no order behind it.
type orderBackoff struct {
	first, max time.Duration

	mu    sync.Mutex
	fails map[int64]failures
}

type failures struct {
	count int
	next  time.Time // not tried before this
}

func newOrderBackoff(first, max time.Duration) *orderBackoff {
	return &orderBackoff{first: first, max: max, fails: map[int64]failures{}}
}

// due reports whether the order may be tried at now.
func (b *orderBackoff) due(id int64, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !now.Before(b.fails[id].next)
}

// failed records a failed attempt at the order at now.
func (b *orderBackoff) failed(id int64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fails[id]
	f.count++
	f.next = now
	if f.count > 1 {
		f.next = now.Add(min(b.first<<min(f.count-2, 30), b.max))
	}
	b.fails[id] = f
	// Orders that stopped failing by being settled elsewhere are forgotten
	// once their wait has long passed, so the map stays small.
	for other, of := range b.fails {
		if now.Sub(of.next) > b.max {
			delete(b.fails, other)
		}
	}
}

// succeeded forgets the order's failures.
func (b *orderBackoff) succeeded(id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.fails, id)
}
