package testenv_test

import (
	"slices"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
)

// TestLatencyIsAddedToTheMicrosecond asks for less than a millisecond,
// which toxiproxy's own latency toxic cannot express (it counts whole
// milliseconds), and checks that every round trip through the proxy takes
// at least that. How close to it the link stays is what make bench prints
// (the SELECT 1 line): an upper bound is not a thing a loaded machine lets
// a test promise.
func TestLatencyIsAddedToTheMicrosecond(t *testing.T) {
	t.Parallel()
	const latency = 300 * time.Microsecond
	p := testenv.NewToxiproxy().Proxy(t, testenv.Name(t, "echo"), startEcho(t))
	testenv.AddLatency(t, p, latency)
	c := dial(t, p.Listen)
	trips := make([]time.Duration, 0, 50)
	for range cap(trips) {
		start := time.Now()
		if !roundTrip(t, c, 5*time.Second) {
			t.Fatal("a line sent through the proxy did not come back")
		}
		trips = append(trips, time.Since(start))
	}
	slices.Sort(trips)
	if trips[0] < latency {
		t.Errorf("the fastest of %d round trips took %v, want at least the latency, %v", len(trips), trips[0], latency)
	}
	t.Logf("round trips with %v added: min %v, p50 %v, max %v", latency, trips[0], trips[len(trips)/2], trips[len(trips)-1])
}
