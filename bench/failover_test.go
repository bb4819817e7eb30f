package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
)

// patroniTTL is deploy/patroni/patroni.yml's ttl: a failover's target is
// at most twice this long without payments.
const patroniTTL = 10 * time.Second

// failoverConc is the closed loop's concurrency in the comparison of the
// Patroni cluster with a single PostgreSQL.
const failoverConc = 32

// failoverResult is what the failover phase measured.
type failoverResult struct {
	patroni, single run // the same closed loop on each
	kills           []failover
}

// failover is one SIGKILL of the primary's PostgreSQL.
type failover struct {
	// leader is how long until another node led the cluster; zero when
	// Patroni restarted the killed primary in place instead (it does when
	// no standby is fit to take over: primary_start_timeout 0 fails over
	// only "if possible"), which the payment's time covers as well.
	leader      time.Duration
	payment     time.Duration // until a payment asked for after the kill was answered 200
	unavailable int           // the 503s that payment met on the way
}

// failovers is how many times the phase kills the primary:
// PAYTRADE_BENCH_FAILOVERS, 5 by default.
func failovers(tb testing.TB) int {
	tb.Helper()
	v := os.Getenv("PAYTRADE_BENCH_FAILOVERS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("PAYTRADE_BENCH_FAILOVERS=%q: want a positive integer", v)
	}
	return n
}

// failoverPhase runs the pipeline with both databases on a Patroni cluster
// with synchronous replication, against the same on the single PostgreSQL,
// step by step; then SIGKILLs the cluster's primary n times, each time
// once the cluster is whole again.
func failoverPhase(t *testing.T, cfg config, n int) failoverResult {
	var r failoverResult
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	pt := startSystem(t, systemConfig{name: "paytrade-patroni", patroni: c, payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv})
	single := startSystem(t, systemConfig{name: "paytrade-single", payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv})
	pt.sweepStep(t, cfg.count(warmupCount), failoverConc)
	single.sweepStep(t, cfg.count(warmupCount), failoverConc)
	r.patroni = pt.sweepStep(t, cfg.count(sweepCount), failoverConc)
	r.single = single.sweepStep(t, cfg.count(sweepCount), failoverConc)
	single.stop(t)
	for i := range n {
		c.WaitHealthy(t, 3*time.Minute)
		r.kills = append(r.kills, pt.killPrimary(t, c, i))
	}
	pt.stop(t)
	return r
}

// killPrimary SIGKILLs the cluster's primary and measures how long until
// another node leads it and until a buyer who asks right after the kill,
// retrying each 503 as Retry-After says, has paid.
func (s *system) killPrimary(t *testing.T, c *testenv.PatroniCluster, i int) failover {
	t.Helper()
	o := s.prepare(t, 1)[0]
	old := c.Leader(t)
	led := make(chan time.Duration, 1)
	stop := make(chan struct{})
	defer close(stop)
	killed := time.Now()
	go func() {
		for {
			if l := c.LeaderNow(); l != nil && l != old {
				led <- time.Since(killed)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	old.KillPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	unavailable, err := s.client.PayRetrying(ctx, s.pay.BaseURL, o.buyer.token, o.payOrderID, fmt.Sprintf("failover-%d", i))
	if err != nil {
		t.Fatalf("the payment after primary %s was killed: %v", old.Name, err)
	}
	f := failover{payment: time.Since(killed), unavailable: unavailable}
	select {
	case f.leader = <-led:
	case <-time.After(2 * patroniTTL):
		// Writes are back, on the old primary: restarted in place.
		if l := c.LeaderNow(); l != old {
			t.Fatalf("a payment went through, yet the cluster is led by %v, neither %s nor another node", l, old.Name)
		}
	}
	return f
}

// medians returns the median time to a new leader and to the first payment.
// Only the kills that made another node leader count towards the first;
// inPlace is how many did not.
func (r failoverResult) medians() (leader, payment time.Duration, inPlace int) {
	var ls, ps []time.Duration
	for _, k := range r.kills {
		if k.leader > 0 {
			ls = append(ls, k.leader)
		} else {
			inPlace++
		}
		ps = append(ps, k.payment)
	}
	if len(ls) > 0 {
		leader = quantilesOf(ls).p50
	}
	return leader, quantilesOf(ps).p50, inPlace
}

// print writes the phase's rows of the table.
func (r failoverResult) print(row func(measure, value, target, verdict string)) {
	if r.patroni.paidRate <= 0 || r.single.paidRate <= 0 {
		row("paytrade on Patroni / single PostgreSQL", "— (phase failed; see above)", "", "")
	} else {
		row(fmt.Sprintf("paytrade on Patroni (sync) / single PostgreSQL, c=%d", failoverConc),
			fmt.Sprintf("%.2f (%.0f vs %.0f orders paid/s)", ratio(r.patroni.paidRate, r.single.paidRate), r.patroni.paidRate, r.single.paidRate), "", "")
	}
	if len(r.kills) == 0 {
		row("primary SIGKILLed: first payment after", "— (phase failed; see above)", "", "")
		return
	}
	leader, payment, inPlace := r.medians()
	var each []string
	for _, k := range r.kills {
		each = append(each, fmt.Sprintf("%.1f", k.payment.Seconds()))
	}
	failedOver := len(r.kills) - inPlace
	value := "— (every killed primary was restarted in place)"
	if failedOver > 0 {
		value = fmt.Sprintf("%.1f s", leader.Seconds())
	}
	if inPlace > 0 {
		value += fmt.Sprintf("; %d of %d restarted in place", inPlace, len(r.kills))
	}
	row(fmt.Sprintf("primary SIGKILLed: new leader after (median of %d)", failedOver), value, "", "")
	row(fmt.Sprintf("  first successful payment after (median of %d)", len(r.kills)),
		fmt.Sprintf("%.1f s (each: %s s)", payment.Seconds(), strings.Join(each, ", ")),
		fmt.Sprintf("≤ %.0f s (2× TTL)", (2*patroniTTL).Seconds()), verdict(payment <= 2*patroniTTL))
}
