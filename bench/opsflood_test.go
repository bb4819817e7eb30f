package bench

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/systest"
)

// The ops flood: other users' payments at opsFloodPayers concurrent
// payers, first alone, then while opsFloodClients clients without a token
// ask both services' /metrics and /readyz as fast as they answer, then
// while as many clients pay as one user, with the right password, as fast
// as pay answers (a wallet that can starve pay unless what cannot be
// checked now is refused at once).
const (
	opsFloodPayers  = 8
	opsFloodClients = 32
	targetOpsFlood  = 2.0 // payment p99 under the flood, at most this times unloaded
)

// opsFloodRun is the flood phase's measure.
type opsFloodRun struct {
	quiet, flooded run
	asked          int64         // ops requests answered during the flooded step
	rate           float64       // of them per second
	walletFlooded  run           // the payments while one wallet floods
	walletAnswers  map[int]int64 // the flooding wallet's answers by status
	walletRate     float64       // of them per second
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
	stopWallet := s.floodWallet(tb, opsFloodClients)
	start = time.Now()
	r.walletFlooded = s.sweepStep(tb, n, opsFloodPayers)
	r.walletAnswers = stopWallet()
	var answered int64
	for _, n := range r.walletAnswers {
		answered += n
	}
	r.walletRate = float64(answered) / time.Since(start).Seconds()
	return r
}

// floodWallet starts clients that pay as one user of its own, with the
// right password, in a closed loop each on a connection of its own, a pay
// order that is not theirs: every request that pay lets through costs a
// password check and a transaction. The returned function stops them and
// counts their answers by status.
func (s *system) floodWallet(tb testing.TB, clients int) func() map[int]int64 {
	tb.Helper()
	const user = 1 << 40 // no buyer's
	if err := s.client.OpenWallet(s.pay.BaseURL, systest.OperatorToken(tb, "bench"), user, 0); err != nil {
		tb.Fatal(err)
	}
	token := systest.UserToken(tb, user)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	done := make(chan struct{})
	var mu sync.Mutex
	answers := map[int]int64{}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, systest.PayURL(s.pay.BaseURL, 1), strings.NewReader(`{"pw":"123"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				answers[res.StatusCode]++
				mu.Unlock()
			}
		})
	}
	return func() map[int]int64 {
		close(done)
		wg.Wait()
		client.CloseIdleConnections()
		return answers
	}
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
