package broker

import "time"

// Default backoff, used for any Backoff field left at zero.
const (
	DefaultBackoffInitial    = 500 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffMultiplier = 2
)

// Backoff is an exponential delay: Initial, then each delay Multiplier times
// the last, never above Max. Zero fields take the defaults above; a
// Multiplier below 1 would shrink the delay, so it takes the default too.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// Next returns the delay after current: Initial when current is zero (no
// delay yet), otherwise current times Multiplier, capped at Max.
func (b Backoff) Next(current time.Duration) time.Duration {
	initial, maxDelay, multiplier := b.Initial, b.Max, b.Multiplier
	if initial <= 0 {
		initial = DefaultBackoffInitial
	}
	if maxDelay <= 0 {
		maxDelay = DefaultBackoffMax
	}
	if multiplier < 1 {
		multiplier = DefaultBackoffMultiplier
	}
	if current <= 0 {
		return min(initial, maxDelay)
	}
	// Multiply in floating point and compare before converting back, so a
	// long run of failures cannot overflow time.Duration.
	next := float64(current) * multiplier
	if next >= float64(maxDelay) {
		return maxDelay
	}
	return time.Duration(next)
}
