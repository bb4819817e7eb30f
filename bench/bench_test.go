// Package bench is make bench: bounded load on the local PostgreSQL and
// RabbitMQ that prints, from one run, what the system does against what
// its parts could do alone — the pay transaction alone (limit A), the
// broker alone (limit B), the course's seed wiring — and how its costs grow
// with history. It is one test, TestBench, skipped unless PAYTRADE_BENCH=1,
// so that go test ./... does not run it.
//
// Scale with PAYTRADE_BENCH_SCALE (a factor on every count, default 1),
// PAYTRADE_BENCH_CONCURRENCY (the closed-loop sweep, default 8,32,128) and
// PAYTRADE_BENCH_HISTORY (the large history, default 1000000 rows). To try
// a setting, PAYTRADE_BENCH_PAY_ENV and PAYTRADE_BENCH_TRADE_ENV add
// space-separated KEY=value pairs to paytrade's pay and trade (for example
// PAYTRADE_BENCH_PAY_ENV=PAY_OUTBOX_BATCH=500); the seed-style pair keeps
// its defaults. PAYTRADE_BENCH_PROFILE=dir writes a CPU profile of pay and
// of trade for every step of the sweep into dir (go tool pprof reads
// them). Run one phase with -run 'TestBench/pipeline' (or bcrypt,
// password, limitA, limitB, cluster, latency, zone, opsflood, failover, growth); the
// failover phase kills its Patroni cluster's primary
// PAYTRADE_BENCH_FAILOVERS times (5). The targets are reported, never asserted: a timed test that
// fails on a slow machine says nothing about the code.
package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

// The targets the bench reports against (it asserts none of them).
const (
	targetVsLimitA    = 0.40
	targetVsSeedStyle = 3.0
	targetHalfPeakP99 = 50 * time.Millisecond
	targetBrokerDown  = 0.9
	targetGrowth      = 2.0
)

// config is the size of a run, and any settings it tries.
type config struct {
	scale            float64
	concurrency      []int
	smallHistory     int
	largeHistory     int
	payEnv, tradeEnv []string
	profileDir       string
}

func (c config) count(n int) int { return max(int(float64(n)*c.scale), 1) }

func readConfig(tb testing.TB) config {
	tb.Helper()
	c := config{scale: 1, concurrency: []int{8, 32, 128}, smallHistory: 10_000, largeHistory: 1_000_000}
	if v := os.Getenv("PAYTRADE_BENCH_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			tb.Fatalf("PAYTRADE_BENCH_SCALE=%q: want a positive number", v)
		}
		c.scale = f
	}
	if v := os.Getenv("PAYTRADE_BENCH_CONCURRENCY"); v != "" {
		c.concurrency = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				tb.Fatalf("PAYTRADE_BENCH_CONCURRENCY=%q: want positive integers separated by commas", v)
			}
			c.concurrency = append(c.concurrency, n)
		}
	}
	if v := os.Getenv("PAYTRADE_BENCH_HISTORY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= c.smallHistory {
			tb.Fatalf("PAYTRADE_BENCH_HISTORY=%q: want an integer above %d", v, c.smallHistory)
		}
		c.largeHistory = n
	}
	if dir := os.Getenv("PAYTRADE_BENCH_PROFILE"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatalf("PAYTRADE_BENCH_PROFILE=%q: %v", dir, err)
		}
		c.profileDir = dir
	}
	c.payEnv = strings.Fields(os.Getenv("PAYTRADE_BENCH_PAY_ENV"))
	c.tradeEnv = strings.Fields(os.Getenv("PAYTRADE_BENCH_TRADE_ENV"))
	return c
}

// The counts of a run at scale 1: enough for stable rates and a p99 of
// thousands of samples, small enough for make bench to end in minutes.
const (
	limitACount      = 5000
	limitBCount      = 50_000
	limitBWindow     = 512
	sweepCount       = 3000
	warmupCount      = 500
	openLoopSeconds  = 20
	relayFreshEvents = 10_000
	refundCount      = 1000
	refundPieces     = 3 // an order refunded in part: two parts, then what remains
	ticksPerHistory  = 5
	unpaidInWindow   = 10_000
	passwordCount    = buyers // each buyer once: its right password upgrades its wallet
)

// The course's seed wiring: publish in the request after the commit and
// wait for the confirm; one message at a time.
var (
	seedStylePay   = []string{"PAY_PUBLISH_MODE=inline-confirmed"}
	seedStyleTrade = []string{"TRADE_PREFETCH=1"}
)

// linkLatency is what the latency phase adds to each round trip between
// the services and their servers: hosts of one data centre, which
// loopback hides.
const linkLatency = time.Millisecond

// zoneLatency is what the zone phase adds to each round trip: a database
// in another zone.
const zoneLatency = 5 * time.Millisecond

// oneClientCount is how many payments one client makes, with linkLatency
// and without, for pay's p50.
const oneClientCount = 300

// oneClientTurn is how many payments one client makes on one system
// before the other system's turn.
const oneClientTurn = 25

// oneClientInTurns pays n orders at one client on each of a and b, taking
// turns of oneClientTurn: whatever else the machine does meanwhile (a
// checkpoint, the host's other guests) falls on both alike, instead of on
// whichever ran at that moment.
func oneClientInTurns(tb testing.TB, a, b *system, n int) (ra, rb run) {
	tb.Helper()
	oa, ob := a.prepare(tb, n), b.prepare(tb, n)
	var aa, ab []attempt
	for i := 0; i < n; i += oneClientTurn {
		j := min(i+oneClientTurn, n)
		aa = append(aa, a.closedLoop(oa[i:j], 1)...)
		ab = append(ab, b.closedLoop(ob[i:j], 1)...)
	}
	ra, rb = a.settle(tb, oa, aa, time.Minute), b.settle(tb, ob, ab, time.Minute)
	ra.conc, rb.conc = 1, 1
	return ra, rb
}

// oneClientSlack is how much more than on loopback pay's p50 at one client
// may take with linkLatency: two round trips to PostgreSQL and nothing
// else waiting.
const oneClientSlack = 2500 * time.Microsecond

// slowSweeps runs both wirings' sweeps with latency added to every round
// trip of pay and trade, and returns their runs and paytrade's system,
// still running.
func slowSweeps(t *testing.T, cfg config, phase string, latency time.Duration) (paytrade, seedStyle []run, pt *system) {
	t.Helper()
	pt = startSystem(t, systemConfig{name: "paytrade-" + phase, latency: latency, payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv, profileDir: cfg.profileDir})
	seed := startSystem(t, systemConfig{name: "seed-style-" + phase, latency: latency, profileDir: cfg.profileDir,
		payEnv: seedStylePay, tradeEnv: seedStyleTrade})
	pt.sweepStep(t, cfg.count(warmupCount), 32)
	seed.sweepStep(t, cfg.count(warmupCount), 32)
	for _, conc := range cfg.concurrency {
		paytrade = append(paytrade, pt.sweepStep(t, cfg.count(sweepCount), conc))
		seedStyle = append(seedStyle, seed.sweepStep(t, cfg.count(sweepCount), conc))
	}
	seed.stop(t)
	return paytrade, seedStyle, pt
}

// limitAConns are the connection counts limit A tries; the best is A.
// 8 is what pay's pool opens at most (database.ServiceMaxConns).
var limitAConns = []int{4, 8, 16, 32}

// results is everything one run measured; a phase that failed leaves its
// part zero and the table says so.
type results struct {
	cfg                      config
	autovacuum               string
	loadBefore, loadAfter    string
	bcryptDefault, bcryptMin time.Duration
	keyedCheck               time.Duration
	password                 passwordResult
	limitA                   map[int]float64
	limitB                   float64
	paytrade, seedStyle      []run
	cluster                  []run         // paytrade on a three-node cluster
	slowPaytrade, slowSeed   []run         // the sweep with linkLatency on every link
	zonePaytrade, zoneSeed   []run         // the sweep with zoneLatency on every link
	oneSlow, oneLoopback     run           // paytrade at one client, with linkLatency and without
	slowTrip, loopbackTrip   time.Duration // p50 of SELECT 1 on pay's link, with linkLatency and without
	linkDelay, zoneDelay     time.Duration // what the links' proxies held a reply for linkLatency and zoneLatency
	halfPeak                 run
	halfPeakRate             float64
	brokerUp, brokerDown     run
	refunds, partialRefunds  refundRun
	tick                     map[int]time.Duration
	unpaidTick               time.Duration // a tick with unpaidInWindow unpaid orders to ask pay about
	relay                    map[int]relayResult
	opsFlood                 opsFloodRun
	failover                 failoverResult
	elapsed                  time.Duration
}

func TestBench(t *testing.T) {
	if os.Getenv("PAYTRADE_BENCH") != "1" {
		t.Skip("run by make bench")
	}
	start := time.Now()
	r := &results{cfg: readConfig(t), limitA: map[int]float64{}, tick: map[int]time.Duration{}, relay: map[int]relayResult{}}
	r.autovacuum = setting(t, "autovacuum")
	r.loadBefore = loadAverage()
	cfg := r.cfg

	t.Run("bcrypt", func(t *testing.T) {
		r.bcryptDefault = bcryptVerify(t, bcrypt.DefaultCost, 5)
		r.bcryptMin = bcryptVerify(t, bcrypt.MinCost, 5)
		r.keyedCheck = keyedVerify(t, 5)
	})
	t.Run("limitA", func(t *testing.T) {
		for _, n := range limitAConns {
			r.limitA[n] = payTransactionRate(t, n, cfg.count(limitACount))
		}
	})
	t.Run("limitB", func(t *testing.T) {
		r.limitB = brokerRate(t, cfg.count(limitBCount), limitBWindow)
	})
	t.Run("pipeline", func(t *testing.T) {
		// paytrade's pay reaches the broker through a proxy throughout, so
		// its broker-down run differs from its broker-up run by the outage
		// alone.
		pt := startSystem(t, systemConfig{name: "paytrade", brokerProxy: true, payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv, profileDir: cfg.profileDir})
		seed := startSystem(t, systemConfig{name: "seed-style", profileDir: cfg.profileDir, payEnv: seedStylePay, tradeEnv: seedStyleTrade})
		pt.sweepStep(t, cfg.count(warmupCount), 32)
		seed.sweepStep(t, cfg.count(warmupCount), 32)
		// Step by step, one wiring then the other: whatever else the
		// machine does meanwhile weighs on both alike, not on one sweep.
		for _, c := range cfg.concurrency {
			r.paytrade = append(r.paytrade, pt.sweepStep(t, cfg.count(sweepCount), c))
			r.seedStyle = append(r.seedStyle, seed.sweepStep(t, cfg.count(sweepCount), c))
		}
		seed.stop(t)
		peak := best(r.paytrade)
		if peak.paidRate == 0 {
			t.Fatal("no step of the sweep paid an order; nothing to pace the rest by")
		}

		// Open loop at half the peak rate: the latency a payment sees when
		// the system is busy but not saturated.
		r.halfPeakRate = peak.paidRate / 2
		orders := pt.prepare(t, min(max(int(r.halfPeakRate*openLoopSeconds*cfg.scale), 200), 10_000))
		r.halfPeak = pt.settle(t, orders, pt.openLoop(orders, r.halfPeakRate), 2*time.Minute)

		// Broker up, then down, at the peak's concurrency, on the same
		// system and history: the outbox keeps taking payments.
		r.brokerUp = pt.sweepStep(t, cfg.count(sweepCount), peak.conc)
		orders = pt.prepare(t, cfg.count(sweepCount))
		pt.proxy.SetDown(true)
		pt.waitReady(t, 503)
		attempts := pt.closedLoop(orders, peak.conc)
		pt.proxy.SetDown(false)
		r.brokerDown = pt.settle(t, orders, attempts, 3*time.Minute)
		r.brokerDown.conc = peak.conc

		// Refunds end to end, at the peak's concurrency, on the same system.
		r.refunds = pt.refundStep(t, cfg.count(refundCount), peak.conc, 1)
		// The same number of refunds, each order refunded in pieces.
		r.partialRefunds = pt.refundStep(t, max(cfg.count(refundCount)/refundPieces, 1), peak.conc, refundPieces)
	})
	t.Run("password", func(t *testing.T) {
		r.password = defaultPasswordRates(t, cfg, cfg.count(passwordCount), runtime.NumCPU())
	})
	t.Run("cluster", func(t *testing.T) {
		// The same sweep on a cluster of three private nodes of the same
		// RabbitMQ, sharing these cores: what replicating every message
		// to two more nodes costs.
		c := testenv.StartRabbitCluster(t, 3)
		cl := startSystem(t, systemConfig{name: "paytrade-cluster", amqpURL: c.URL, ctl: c.Ctl, payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv, profileDir: cfg.profileDir})
		cl.sweepStep(t, cfg.count(warmupCount), 32)
		for _, conc := range cfg.concurrency {
			r.cluster = append(r.cluster, cl.sweepStep(t, cfg.count(sweepCount), conc))
		}
		cl.stop(t)
	})
	t.Run("latency", func(t *testing.T) {
		var pt *system
		r.slowPaytrade, r.slowSeed, pt = slowSweeps(t, cfg, "latency", linkLatency)
		r.linkDelay = pt.linkDelay
		// One client, with the latency and without: what one payment's
		// round trips cost, with nothing else waiting.
		fast := startSystem(t, systemConfig{name: "paytrade-loopback", payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv})
		fast.sweepStep(t, cfg.count(warmupCount), 8)
		r.oneSlow, r.oneLoopback = oneClientInTurns(t, pt, fast, cfg.count(oneClientCount))
		r.slowTrip, r.loopbackTrip = pt.dbRoundTrip(t), fast.dbRoundTrip(t)
		pt.stop(t)
		fast.stop(t)
	})
	t.Run("zone", func(t *testing.T) {
		var pt *system
		r.zonePaytrade, r.zoneSeed, pt = slowSweeps(t, cfg, "zone", zoneLatency)
		r.zoneDelay = pt.linkDelay
		pt.stop(t)
	})
	t.Run("opsflood", func(t *testing.T) {
		pt := startSystem(t, systemConfig{name: "paytrade-opsflood", payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv})
		pt.sweepStep(t, cfg.count(warmupCount), opsFloodPayers)
		r.opsFlood = pt.opsFlood(t, cfg.count(sweepCount))
		pt.stop(t)
	})
	t.Run("failover", func(t *testing.T) {
		r.failover = failoverPhase(t, cfg, failovers(t))
	})
	t.Run("growth", func(t *testing.T) {
		for _, h := range []int{cfg.smallHistory, cfg.largeHistory} {
			t.Run(fmt.Sprintf("tick%d", h), func(t *testing.T) { r.tick[h] = fallbackTick(t, h, ticksPerHistory) })
			t.Run(fmt.Sprintf("relay%d", h), func(t *testing.T) { r.relay[h] = relayRate(t, h, cfg.count(relayFreshEvents)) })
		}
		t.Run("unpaidwindow", func(t *testing.T) { r.unpaidTick = unpaidWindowTick(t, cfg.count(unpaidInWindow)) })
	})
	r.elapsed = time.Since(start)
	r.loadAfter = loadAverage()
	r.print(os.Stdout)
}

// setting reads a PostgreSQL server setting, for the table's header.
func setting(tb testing.TB, name string) string {
	tb.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, testenv.PostgresURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer pool.Close()
	var v string
	if err := pool.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// loadAverage returns the 1, 5 and 15 minute load averages, so a reader
// can tell a quiet machine from one where something else ran meanwhile
// (every rate here shares the same two cores).
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// best returns the run with the most orders paid per second.
func best(runs []run) run {
	var b run
	for _, r := range runs {
		if r.paidRate > b.paidRate {
			b = r
		}
	}
	return b
}

func bestLimitA(m map[int]float64) (int, float64) {
	n, v := 0, 0.0
	for _, c := range limitAConns {
		if m[c] > v {
			n, v = c, m[c]
		}
	}
	return n, v
}

// ratio is a/b, or 0 if either is missing.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// print writes the table.
func (r *results) print(w io.Writer) {
	row := func(measure, value, target, verdict string) {
		fmt.Fprintf(w, "%-56s %-46s %-12s %s\n", measure, value, target, verdict)
	}
	missing := "— (phase failed; see above)"
	rate := func(v float64, unit string) string {
		if v <= 0 {
			return missing
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	fmt.Fprintf(w, "\npaytrade make bench — %d CPUs, GOMAXPROCS %d, scale %g, PostgreSQL autovacuum=%s, run took %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), r.cfg.scale, r.autovacuum, r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "load average before %s, after %s (anything else running skews every rate)\n", r.loadBefore, r.loadAfter)
	if len(r.cfg.payEnv)+len(r.cfg.tradeEnv) > 0 {
		fmt.Fprintf(w, "paytrade tried with pay %v, trade %v\n", r.cfg.payEnv, r.cfg.tradeEnv)
	}
	fmt.Fprintln(w)
	row("measure", "value", "target", "verdict")
	row(fmt.Sprintf("bcrypt verify at default cost %d (median of 5)", bcrypt.DefaultCost),
		fmt.Sprintf("%s ms (cost %d: %s ms)", ms(r.bcryptDefault), bcrypt.MinCost, ms(r.bcryptMin)), "", "")
	row("keyed hash verify, HMAC-SHA256 with the pepper (median of 5)", fmt.Sprintf("%.1f µs", float64(r.keyedCheck.Nanoseconds())/1000), "", "")
	if pw := r.password; pw.bcrypt.acceptRate > 0 && pw.keyed.acceptRate > 0 {
		row(fmt.Sprintf("pay as shipped, c=%d: wallets with bcrypt (before)", pw.conc),
			fmt.Sprintf("%.0f payments/s, pay p50 %s ms (%d of %d wallets upgraded by it)", pw.bcrypt.acceptRate, ms(pw.bcrypt.pay.p50), pw.upgraded, pw.wallets), "", "")
		row("  the same wallets, upgraded to the keyed hash (after)",
			fmt.Sprintf("%.0f payments/s, pay p50 %s ms: %.1f× before", pw.keyed.acceptRate, ms(pw.keyed.pay.p50), ratio(pw.keyed.acceptRate, pw.bcrypt.acceptRate)), "", "")
	} else {
		row("pay as shipped: wallets with bcrypt (before), keyed (after)", missing, "", "")
	}
	bestN, limitA := bestLimitA(r.limitA)
	for _, n := range limitAConns {
		mark := ""
		if n == bestN {
			mark = "  ← A"
		}
		row(fmt.Sprintf("limit A: pay tx alone, N=%d conns, %d tx", n, r.cfg.count(limitACount)), rate(r.limitA[n], "tx/s")+mark, "", "")
	}
	row(fmt.Sprintf("limit B: persistent → quorum queue, %d in flight", limitBWindow), rate(r.limitB, "msg/s"), "", "")

	seed, pt := best(r.seedStyle), best(r.paytrade)
	row("seed-style (inline confirm, prefetch 1), best", rateAt(seed), "", "")
	row("paytrade (outbox), best of the sweep", rateAt(pt), "", "")
	row(fmt.Sprintf("paytrade open loop at half peak (%.0f/s), pay→paid", r.halfPeakRate),
		"p50/p95/p99 "+r.halfPeak.payToPaid.String()+" ms", "p99 ≤ "+ms(targetHalfPeakP99), verdict(r.halfPeak.payToPaid.n > 0 && r.halfPeak.payToPaid.p99 <= targetHalfPeakP99))
	row(fmt.Sprintf("  same run: pay p50/p95/p99, orders paid/s (of %d)", r.halfPeak.requests),
		fmt.Sprintf("%s ms, %.0f/s", r.halfPeak.pay, r.halfPeak.paidRate), "", "")
	row(fmt.Sprintf("broker up, c=%d: payments accepted/s", r.brokerUp.conc), rate(r.brokerUp.acceptRate, "/s"), "", "")
	row(fmt.Sprintf("broker down, c=%d: payments accepted/s", r.brokerDown.conc), rate(r.brokerDown.acceptRate, "/s")+
		fmt.Sprintf(" (%d of %d accepted)", r.brokerDown.accepted, r.brokerDown.requests), "", "")
	row("  then broker back: outbox drained, all orders paid in", fmt.Sprintf("%.1f s (%d of %d paid)",
		r.brokerDown.drain.Seconds(), r.brokerDown.paid, r.brokerDown.accepted), "", "")
	row(fmt.Sprintf("refunds end to end, c=%d: orders refunded/s (of %d)", r.refunds.conc, r.refunds.requested),
		fmt.Sprintf("%s, request→refunded p50/p95/p99 %s ms (%d refunded)", rate(r.refunds.rate, "/s"), r.refunds.latency, r.refunds.refunded), "", "")
	pr := r.partialRefunds
	row(fmt.Sprintf("partial refunds end to end, c=%d, %d an order: refunds/s (of %d)", pr.conc, pr.pieces, pr.requested),
		fmt.Sprintf("%s, orders refunded %s, last request→refunded p50/p95/p99 %s ms (%d refunds, %d orders)",
			rate(pr.refundRate, "/s"), rate(pr.rate, "/s"), pr.latency, pr.credited, pr.refunded), "", "")
	quiet, flooded := r.opsFlood.quiet.pay, r.opsFlood.flooded.pay
	floodRatio := ratio(float64(flooded.p99), float64(quiet.p99))
	row(fmt.Sprintf("pay p99, c=%d, under a /metrics+/readyz flood vs alone", opsFloodPayers),
		fmt.Sprintf("%s vs %s ms = %.2f× (%d clients, %.0f ops req/s)", ms(flooded.p99), ms(quiet.p99), floodRatio, opsFloodClients, r.opsFlood.rate),
		fmt.Sprintf("≤ %.0f×", targetOpsFlood), verdict(floodRatio > 0 && floodRatio <= targetOpsFlood))
	walletFlooded := r.opsFlood.walletFlooded.pay
	walletRatio := ratio(float64(walletFlooded.p99), float64(quiet.p99))
	row(fmt.Sprintf("other users' pay p99, c=%d, while one wallet floods its payments vs alone", opsFloodPayers),
		fmt.Sprintf("%s vs %s ms = %.2f× (%d clients, %.0f req/s: %d answered 429 at once, %d checked)", ms(walletFlooded.p99), ms(quiet.p99), walletRatio,
			opsFloodClients, r.opsFlood.walletRate, r.opsFlood.walletAnswers[http.StatusTooManyRequests], r.opsFlood.walletAnswers[http.StatusNotFound]),
		fmt.Sprintf("≤ %.0f×", targetOpsFlood), verdict(walletRatio > 0 && walletRatio <= targetOpsFlood))
	r.failover.print(row)
	for _, h := range []int{r.cfg.smallHistory, r.cfg.largeHistory} {
		tick := missing
		if d := r.tick[h]; d > 0 {
			tick = fmt.Sprintf("%s ms (median of %d; each finds %d lost payments)", ms(d), ticksPerHistory, lostPerTick)
		}
		row(fmt.Sprintf("cron fallback tick, %s orders of history", abbrev(h)), tick, "", "")
	}
	unpaid := missing
	if r.unpaidTick > 0 {
		unpaid = fmt.Sprintf("%s ms (median of %d; %d of them paid at pay; pay asked %d at a time)",
			ms(r.unpaidTick), ticksPerHistory, lostPerTick, tickBatch)
	}
	row(fmt.Sprintf("cron fallback tick, %s unpaid orders in the window", abbrev(r.cfg.count(unpaidInWindow))), unpaid, "", "")
	for _, h := range []int{r.cfg.smallHistory, r.cfg.largeHistory} {
		value := missing
		worst := missing
		if x := r.relay[h]; x.rate > 0 {
			value = fmt.Sprintf("%.0f events/s", x.vacuumed)
			worst = fmt.Sprintf("%.0f events/s (claim index %.1f MB)", x.rate, float64(x.indexBytes)/(1<<20))
		}
		row(fmt.Sprintf("outbox relay, %s published events of history", abbrev(h)), value, "", "")
		row("  the same history never vacuumed", worst, "", "")
	}

	ratioRow := func(name string, v, target float64) {
		if v <= 0 {
			row(name, missing, "", "")
			return
		}
		row(name, fmt.Sprintf("%.2f", v), fmt.Sprintf("≥ %.2f", target), verdict(v >= target))
	}
	growthRow := func(name string, v float64) {
		if v <= 0 {
			row(name, missing, "", "")
			return
		}
		row(name, fmt.Sprintf("%.2f×", v), fmt.Sprintf("≤ %.0f×", targetGrowth), verdict(v <= targetGrowth))
	}
	ratioRow("ratio paytrade / A", ratio(pt.paidRate, limitA), targetVsLimitA)
	ratioRow("ratio paytrade / seed-style", ratio(pt.paidRate, seed.paidRate), targetVsSeedStyle)
	if v := ratio(limitA, seed.paidRate); v > 0 {
		row("  ceiling: A / seed-style (paytrade as fast as A)", fmt.Sprintf("%.2f", v), "", "")
	}
	ratioRow("ratio broker-down / broker-up (accepted/s)", ratio(r.brokerDown.acceptRate, r.brokerUp.acceptRate), targetBrokerDown)
	small, large := abbrev(r.cfg.smallHistory), abbrev(r.cfg.largeHistory)
	growthRow(fmt.Sprintf("growth: tick time %s / %s", large, small),
		ratio(float64(r.tick[r.cfg.largeHistory]), float64(r.tick[r.cfg.smallHistory])))
	growthRow(fmt.Sprintf("growth: relay slowdown %s vs %s", large, small),
		ratio(r.relay[r.cfg.smallHistory].vacuumed, r.relay[r.cfg.largeHistory].vacuumed))
	if v := ratio(r.relay[r.cfg.smallHistory].rate, r.relay[r.cfg.largeHistory].rate); v > 0 {
		row("  never vacuumed: every claim walks the dead entries", fmt.Sprintf("%.2f×", v), "", "")
	}

	fmt.Fprintf(w, "\n%-18s %4s %13s %10s %22s %25s %8s %8s\n", "closed-loop sweep", "conc", "orders paid/s", "accepted/s",
		"pay p50/p95/p99 ms", "pay→paid p50/p95/p99 ms", "CPU busy", "ev/batch")
	for _, s := range []struct {
		name string
		runs []run
	}{{"paytrade (outbox)", r.paytrade}, {"seed-style", r.seedStyle}} {
		for _, x := range s.runs {
			busy, batch := "—", "—"
			if x.cpuBusy >= 0 {
				busy = fmt.Sprintf("%.0f%%", 100*x.cpuBusy)
			}
			if x.relayBatch > 0 {
				batch = fmt.Sprintf("%.1f", x.relayBatch)
			}
			note := ""
			if x.paid < x.accepted || x.accepted < x.requests {
				note = fmt.Sprintf("  (%d sent, %d accepted, %d paid; first error: %v)", x.requests, x.accepted, x.paid, x.firstErr)
			}
			fmt.Fprintf(w, "%-18s %4d %13.0f %10.0f %22s %25s %8s %8s%s\n", s.name, x.conc, x.paidRate, x.acceptRate,
				x.pay, x.payToPaid, busy, batch, note)
		}
	}
	if cl := best(r.cluster); cl.paidRate > 0 {
		fmt.Fprintf(w, "\n%-18s %4s %13s %10s %22s %25s\n", "three-node cluster", "conc", "orders paid/s", "accepted/s",
			"pay p50/p95/p99 ms", "pay→paid p50/p95/p99 ms")
		for _, x := range r.cluster {
			fmt.Fprintf(w, "%-18s %4d %13.0f %10.0f %22s %25s\n", "paytrade (outbox)", x.conc, x.paidRate, x.acceptRate, x.pay, x.payToPaid)
		}
		// The three nodes share these cores with everything else, so a
		// rate says little of a cluster; what replicating costs is CPU.
		fmt.Fprintf(w, "%-18s %4s  %s\n", "CPU per order paid", "conc", "ms of CPU = pay + trade + postgres + rabbitmq (every node) + load generator")
		for _, x := range r.cluster {
			fmt.Fprintf(w, "%-18s %4d  %s\n", "three-node cluster", x.conc, x.cpu.perOrder(x.paid))
		}
		fmt.Fprintf(w, "replication's cost at c=%d: %s ms of RabbitMQ CPU per order paid on three nodes, %s on one (cluster %s, single node %s)\n",
			cl.conc, msPerOrder(cl, "rabbitmq"), msPerOrder(pt, "rabbitmq"), rateAt(cl), rateAt(pt))
	}
	for _, x := range []struct{ set, latency time.Duration }{{r.linkDelay, linkLatency}, {r.zoneDelay, zoneLatency}} {
		if x.set > 0 {
			fmt.Fprintf(w, "+%v per round trip: each link's proxy held replies %s ms, so that SELECT 1 on pay's database link gained %v (the proxy's own hop is the rest)\n",
				x.latency, ms(x.set), x.latency)
		}
	}
	slowSweepTable(w, linkLatency, 3, r.slowPaytrade, r.slowSeed, pt, seed)
	slowSweepTable(w, zoneLatency, 5, r.zonePaytrade, r.zoneSeed, pt, seed)
	if slow, fast := r.oneSlow.pay.p50, r.oneLoopback.pay.p50; slow > 0 && fast > 0 {
		fmt.Fprintf(w, "pay p50 at one client, +%v per round trip against loopback: %s against %s ms (%+.2f ms); target at most +%s ms: %s\n",
			linkLatency, ms(slow), ms(fast), (slow-fast).Seconds()*1000, ms(oneClientSlack), verdict(slow-fast <= oneClientSlack))
		// The links are calibrated so that each adds linkLatency to a
		// round trip (calibrateLinks), but the machine moves under it: the
		// same target in the round trips the link added at the end of the
		// phase, two, and the slack beyond them.
		if added := r.slowTrip - r.loopbackTrip; added > 0 {
			slack := oneClientSlack - 2*linkLatency
			fmt.Fprintf(w, "  the link adds %s ms to a round trip (SELECT 1 p50 %s against %s ms): +%s ms is %.2f of them; target at most 2 and %s ms (%s ms): %s\n",
				ms(added), ms(r.slowTrip), ms(r.loopbackTrip), ms(slow-fast), float64(slow-fast)/float64(added), ms(slack),
				ms(2*added+slack), verdict(slow-fast <= 2*added+slack))
		}
	}
	fmt.Fprintf(w, "\n%-18s %4s  %s\n", "DB round trips", "conc", "per order paid: pay + trade (counted on the wire, idle polls included)")
	for _, s := range []struct {
		name string
		runs []run
	}{{"paytrade (outbox)", r.paytrade}, {"seed-style", r.seedStyle}, {"paytrade, +1 ms", r.slowPaytrade}, {"seed-style, +1 ms", r.slowSeed},
		{"paytrade, +5 ms", r.zonePaytrade}, {"seed-style, +5 ms", r.zoneSeed}} {
		for _, x := range s.runs {
			fmt.Fprintf(w, "%-18s %4d  %.1f = %.1f + %.1f\n", s.name, x.conc, x.payTrips+x.tradeTrips, x.payTrips, x.tradeTrips)
		}
	}
	fmt.Fprintf(w, "\n%-18s %4s  %s\n", "CPU per order paid", "conc", "ms of CPU = pay + trade + postgres + rabbitmq + load generator")
	for _, s := range []struct {
		name string
		runs []run
	}{{"paytrade (outbox)", r.paytrade}, {"seed-style", r.seedStyle}, {"paytrade, +1 ms", r.slowPaytrade}, {"seed-style, +1 ms", r.slowSeed},
		{"paytrade, +5 ms", r.zonePaytrade}, {"seed-style, +5 ms", r.zoneSeed}} {
		for _, x := range s.runs {
			fmt.Fprintf(w, "%-18s %4d  %s\n", s.name, x.conc, x.cpu.perOrder(x.paid))
		}
	}
	fmt.Fprintln(w)
}

func rateAt(r run) string {
	if r.paidRate <= 0 {
		return "— (phase failed; see above)"
	}
	return fmt.Sprintf("%.0f orders paid/s at c=%d", r.paidRate, r.conc)
}

// abbrev spells a row count short: 10k, 1M.
func abbrev(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return strconv.Itoa(n)
	}
}

// slowSweepTable prints both wirings' sweeps with latency added to every
// round trip, and the ratio of their best against target.
func slowSweepTable(w io.Writer, latency time.Duration, target float64, paytrade, seedStyle []run, pt, seed run) {
	slowPT, slowSeed := best(paytrade), best(seedStyle)
	if slowPT.paidRate <= 0 {
		return
	}
	fmt.Fprintf(w, "\n%-18s %4s %13s %10s %22s %25s   (+%v per round trip to PostgreSQL and RabbitMQ)\n", "sweep, slow links", "conc",
		"orders paid/s", "accepted/s", "pay p50/p95/p99 ms", "pay→paid p50/p95/p99 ms", latency)
	for _, s := range []struct {
		name string
		runs []run
	}{{"paytrade (outbox)", paytrade}, {"seed-style", seedStyle}} {
		for _, x := range s.runs {
			fmt.Fprintf(w, "%-18s %4d %13.0f %10.0f %22s %25s\n", s.name, x.conc, x.paidRate, x.acceptRate, x.pay, x.payToPaid)
		}
	}
	slowRatio := ratio(slowPT.paidRate, slowSeed.paidRate)
	fmt.Fprintf(w, "ratio paytrade / seed-style with +%v per round trip: %.2f (best %s against %s; on loopback %.2f); target ≥ %g: %s\n",
		latency, slowRatio, rateAt(slowPT), rateAt(slowSeed), ratio(pt.paidRate, seed.paidRate), target, verdict(slowRatio >= target))
}
