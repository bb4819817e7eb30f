package testenv_test

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
)

// TestLatencyIsAddedToTheMicrosecond asks for less than a millisecond,
// which a Go timer alone cannot wait (the runtime rounds a short sleep up
// to a millisecond), and checks that every round trip through the proxy
// takes at least that. How close to it the link stays is what make bench
// prints (the SELECT 1 line): an upper bound is not a thing a loaded
// machine lets a test promise.
func TestLatencyIsAddedToTheMicrosecond(t *testing.T) {
	t.Parallel()
	const latency = 300 * time.Microsecond
	p := testenv.NewProxy(t, startEcho(t))
	p.SetLatency(latency)
	c := dial(t, p.Addr())
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
	if got := p.RoundTrips(); got != int64(len(trips)) {
		t.Errorf("the proxy counted %d round trips, want %d", got, len(trips))
	}
	t.Logf("round trips with %v added: min %v, p50 %v, max %v", latency, trips[0], trips[len(trips)/2], trips[len(trips)-1])
}

// TestLatencyKeepsABigReplyWholeAndInOrder sends more than the proxy reads
// at once, so the echo comes back in many chunks through the delay line,
// and a latency set while the link is open applies to it; every byte must
// come back, in order, and no earlier than the latency.
func TestLatencyKeepsABigReplyWholeAndInOrder(t *testing.T) {
	t.Parallel()
	p := testenv.NewProxy(t, startEcho(t))
	c := dial(t, p.Addr())
	if !roundTrip(t, c, 5*time.Second) {
		t.Fatal("no echo through the proxy")
	}
	const latency = 20 * time.Millisecond
	p.SetLatency(latency)
	sent := make([]byte, 1<<20)
	for i := range sent {
		sent[i] = byte(i * 7 / 5)
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go func() { _, _ = c.Write(sent) }()
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(c, got[:1]); err != nil {
		t.Fatalf("read the first byte back: %v", err)
	}
	first := time.Since(start)
	if _, err := io.ReadFull(c, got[1:]); err != nil {
		t.Fatalf("read the echo back: %v", err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("the %d bytes came back changed or out of order", len(sent))
	}
	if first < latency {
		t.Errorf("the first byte came back after %v, want at least the latency, %v", first, latency)
	}
}
