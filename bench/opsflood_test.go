package bench

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The ops flood: other users' payments at opsFloodPayers concurrent
// payers, first alone, then while opsFloodClients clients without a token
// ask both services' /metrics and /readyz as fast as they answer.
const (
	opsFloodPayers  = 8
	opsFloodClients = 32
	targetOpsFlood  = 2.0 // payment p99 under the flood, at most this times unloaded
)

// opsFloodRun is the flood phase's measure.
type opsFloodRun struct {
	quiet, flooded run
	asked          int64   // ops requests answered during the flooded step
	rate           float64 // of them per second
}

// opsFlood measures payments unloaded, then under the flood, on one system.
func (s *system) opsFlood(tb testing.TB, n int) opsFloodRun {
	tb.Helper()
	var r opsFloodRun
	r.quiet = s.sweepStep(tb, n, opsFloodPayers)
	stop := s.floodOps(opsFloodClients)
	start := time.Now()
	r.flooded = s.sweepStep(tb, n, opsFloodPayers)
	r.asked = stop()
	r.rate = float64(r.asked) / time.Since(start).Seconds()
	return r
}

// floodOps starts clients that ask pay's and trade's /metrics and /readyz
// in a closed loop, each on a connection of its own, until the returned
// function stops them and says how many answers they got.
func (s *system) floodOps(clients int) func() int64 {
	urls := []string{s.pay.BaseURL + "/metrics", s.pay.BaseURL + "/readyz", s.trade.BaseURL + "/metrics", s.trade.BaseURL + "/readyz"}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	done := make(chan struct{})
	var answered atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for j := i; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				res, err := client.Get(urls[j%len(urls)])
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				answered.Add(1)
			}
		})
	}
	return func() int64 {
		close(done)
		wg.Wait()
		client.CloseIdleConnections()
		return answered.Load()
	}
}
