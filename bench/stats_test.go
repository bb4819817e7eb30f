package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// quantiles are the p50, p95 and p99 of a set of durations.
type quantiles struct {
	p50, p95, p99 time.Duration
	n             int
}

// quantilesOf returns the nearest-rank p50/p95/p99 of ds.
func quantilesOf(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	return quantiles{p50: rank(0.50), p95: rank(0.95), p99: rank(0.99), n: len(s)}
}

func (q quantiles) String() string {
	if q.n == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s", ms(q.p50), ms(q.p95), ms(q.p99))
}

// median returns the middle of ds (the upper one of an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ms formats d in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// perSecond is n events over d.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
