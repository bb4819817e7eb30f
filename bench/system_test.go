package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// The shape of every bench order: one cent amount keeps wallets from ever
// running dry, and 256 buyers keep them from serialising on one row lock
// even at the highest concurrency of the sweep.
const (
	buyers   = 256
	orderFee = 100
)

// systemConfig says how to start one pay and one trade.
type systemConfig struct {
	name             string // paytrade, seed-style: names its profiles
	payEnv, tradeEnv []string
	// profileDir, when set, gets a CPU profile of pay and of trade for
	// each sweep step, through their pprof listeners (PAY_DEBUG_ADDR,
	// TRADE_DEBUG_ADDR).
	profileDir string
	// brokerProxy puts pay's AMQP connection through a proxy the bench can
	// take down; trade keeps a direct one, so it drains the queue meanwhile.
	brokerProxy bool
	// amqpURL, when set, is the broker to run on (a cluster's AMQP_URL)
	// instead of the test broker; ctl, its rabbitmqctl.
	amqpURL string
	ctl     testenv.Ctl
	// latency, when set, is added to every round trip of pay and trade to
	// PostgreSQL and RabbitMQ, by the proxy each link goes through: hosts
	// of one data centre rather than loopback.
	latency time.Duration
	// patroni, when set, holds pay's and trade's databases instead of the
	// test's PostgreSQL: a cluster with synchronous replication.
	patroni *testenv.PatroniCluster
}

// system is one pay and one trade binary, each on a database of its own,
// sharing broker names of their own, with funded buyers.
type system struct {
	cfg        systemConfig
	pay, trade *testenv.Process
	payDebug   string // pprof listeners, when profiling
	tradeDebug string
	tradeDB    *pgxpool.Pool // read directly for the time each order was paid
	payDBURL   string        // what pay connects to, through every proxy of its link
	// linkDelay is what each link's proxy was set to hold a reply so
	// that a round trip gains cfg.latency, the proxy's own hop included.
	linkDelay time.Duration
	proxy     *testenv.Proxy
	// payWire and tradeWire carry pay's and trade's connections to
	// PostgreSQL and count their round trips.
	payWire, tradeWire *testenv.Proxy
	client             *systest.Client
	buyers             []buyer
	nextBuyer          atomic.Int64
}

type buyer struct {
	id    int64
	token string
}

// startSystem starts pay and trade as e2e's newSystem does, with the cron
// fallback pushed out to an hour so that only the broker path pays orders.
func startSystem(tb testing.TB, cfg systemConfig) *system {
	tb.Helper()
	sys := systest.NewOnBroker(tb, "bench", cfg.amqpURL, cfg.ctl, systest.FaultInject)
	if cfg.patroni != nil {
		sys.PayDB = cfg.patroni.NewEmptyDatabase(tb, "bench_pay")
		sys.TradeDB = cfg.patroni.NewEmptyDatabase(tb, "bench_trade")
	}
	// One keep-alive connection per worker, even at the sweep's highest
	// concurrency: the bench must not measure TCP handshakes.
	s := &system{cfg: cfg, client: systest.NewClient(1024, 30*time.Second)}
	tb.Cleanup(s.client.HTTP.CloseIdleConnections)
	payEnv := append(sys.PayEnv(),
		// Back within a second of the broker: the drain after an outage
		// is measured, not the reconnect backoff.
		"AMQP_RECONNECT_INITIAL_INTERVAL=100ms", "AMQP_RECONNECT_MAX_INTERVAL=1s",
	)
	payAMQP, tradeAMQP := sys.PayBroker.URL, sys.TradeBroker.URL
	if cfg.brokerProxy {
		s.proxy = testenv.NewProxy(tb, testenv.HostPort(tb, payAMQP))
		payAMQP = s.proxy.RewriteURL(tb, payAMQP)
	}
	payDB, tradeDB := sys.PayDB, sys.TradeDB
	// A cluster's URL names every node, and the client picks the primary
	// among them: one proxy cannot stand for that, so its round trips go
	// uncounted.
	if cfg.patroni == nil {
		s.payWire = testenv.NewProxy(tb, testenv.HostPort(tb, sys.PayDB))
		s.tradeWire = testenv.NewProxy(tb, testenv.HostPort(tb, sys.TradeDB))
		payDB, tradeDB = s.payWire.RewriteURL(tb, sys.PayDB), s.tradeWire.RewriteURL(tb, sys.TradeDB)
	}
	if cfg.latency > 0 {
		// The proxies that count the database round trips slow them too,
		// and two more slow the brokers': one hop per link.
		if s.payWire == nil {
			tb.Fatal("latency needs the counting proxies, which a Patroni cluster has none of")
		}
		payLink := testenv.NewProxy(tb, testenv.HostPort(tb, payAMQP))
		tradeLink := testenv.NewProxy(tb, testenv.HostPort(tb, tradeAMQP))
		payAMQP, tradeAMQP = payLink.RewriteURL(tb, payAMQP), tradeLink.RewriteURL(tb, tradeAMQP)
		s.linkDelay = calibrateLinks(tb, []*testenv.Proxy{s.payWire, s.tradeWire, payLink, tradeLink}, sys.PayDB, payDB, cfg.latency)
	}
	s.payDBURL = payDB
	payEnv = append(payEnv, "PAY_DATABASE_URL="+payDB)
	tradeEnv := []string{"TRADE_DATABASE_URL=" + tradeDB}
	payEnv = append(payEnv, "AMQP_URL="+payAMQP)
	tradeEnv = append(tradeEnv, "AMQP_URL="+tradeAMQP)
	if cfg.profileDir != "" {
		s.payDebug, s.tradeDebug = testenv.FreeAddr(tb), testenv.FreeAddr(tb)
		payEnv = append(payEnv, "PAY_DEBUG_ADDR="+s.payDebug)
		tradeEnv = append(tradeEnv, "TRADE_DEBUG_ADDR="+s.tradeDebug)
	}
	s.pay = sys.StartPay(tb, append(payEnv, cfg.payEnv...))
	tradeEnv = append(append(sys.TradeEnv(s.pay.BaseURL), "TRADE_PAY_CHECK_SPEC=@every 1h"), tradeEnv...)
	s.trade = sys.StartTrade(tb, append(tradeEnv, cfg.tradeEnv...))

	pool, err := database.Open(context.Background(), sys.TradeDB)
	if err != nil {
		tb.Fatalf("open trade database: %v", err)
	}
	tb.Cleanup(pool.Close)
	s.tradeDB = pool
	s.fundBuyers(tb)
	return s
}

// fundBuyers opens the buyers' wallets at pay.
func (s *system) fundBuyers(tb testing.TB) {
	tb.Helper()
	svc := systest.OperatorToken(tb, "bench")
	s.buyers = make([]buyer, buyers)
	for i := range s.buyers {
		id := int64(i + 1)
		s.buyers[i] = buyer{id: id, token: systest.UserToken(tb, id)}
	}
	err := systest.Parallel(16, buyers, func(i int) error {
		return s.client.OpenWallet(s.pay.BaseURL, svc, s.buyers[i].id, int64(1)<<50)
	})
	if err != nil {
		tb.Fatalf("fund buyers: %v", err)
	}
}

// prepared is an unpaid order at trade with its waiting pay order at pay.
type prepared struct {
	orderID, payOrderID int64
	buyer               buyer
}

// prepare creates n orders and their pay orders, as the course's front end
// does, before anything is timed. Consecutive orders belong to different
// buyers, so concurrent payments never wait for each other's wallet.
func (s *system) prepare(tb testing.TB, n int) []prepared {
	tb.Helper()
	out := make([]prepared, n)
	svc := systest.Services{Pay: s.pay.BaseURL, Trade: s.trade.BaseURL}
	err := systest.Parallel(16, n, func(i int) error {
		b := s.buyers[int(s.nextBuyer.Add(1)-1)%len(s.buyers)]
		id, poID, err := s.client.Order(svc, b.token, orderFee)
		out[i] = prepared{orderID: id, payOrderID: poID, buyer: b}
		return err
	})
	if err != nil {
		tb.Fatalf("prepare %d orders: %v", n, err)
	}
	return out
}

// attempt is one timed pay request.
type attempt struct {
	sent, returned time.Time
	ok             bool
	err            error
}

// payOne sends POST /pay-orders/{id} for o and times it.
func (s *system) payOne(o prepared) attempt {
	a := attempt{sent: time.Now()}
	a.err = s.client.Pay(s.pay.BaseURL, o.buyer.token, o.payOrderID)
	a.returned = time.Now()
	a.ok = a.err == nil
	return a
}

// closedLoop pays every order with conc workers, each sending its next
// request as soon as the previous one returned.
func (s *system) closedLoop(orders []prepared, conc int) []attempt {
	attempts := make([]attempt, len(orders))
	_ = systest.Parallel(conc, len(orders), func(i int) error {
		attempts[i] = s.payOne(orders[i])
		return nil
	})
	return attempts
}

// maxOpenInFlight bounds an open-loop run; an arrival that finds them all
// busy waits, and that wait shows in its latency.
const maxOpenInFlight = 1024

// openLoop pays the orders on a fixed arrival schedule of rate per second,
// whatever the latency of the requests before: an open-loop load, whose
// latencies are not flattered by the load backing off.
func (s *system) openLoop(orders []prepared, rate float64) []attempt {
	attempts := make([]attempt, len(orders))
	slots := make(chan struct{}, maxOpenInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range orders {
		time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			attempts[i] = s.payOne(orders[i])
		})
	}
	wg.Wait()
	return attempts
}

// run is what one timed phase measured.
type run struct {
	conc       int
	requests   int
	accepted   int
	paid       int
	firstErr   error
	acceptRate float64 // accepted / (first pay sent → last pay returned)
	paidRate   float64 // orders paid / (first pay sent → last order paid)
	pay        quantiles
	payToPaid  quantiles // order's update_time − its pay request's return
	drain      time.Duration
	cpuBusy    float64  // share of all cores busy while the requests ran; -1 unknown
	cpu        cpuShare // CPU time of each part, from the first request to the last order paid
	relayBatch float64  // events per outbox relay batch; 0 without an outbox
	// payTrips and tradeTrips are pay's and trade's round trips to
	// PostgreSQL per order paid, from the first request to the last order
	// paid (the relay's idle polls and the purges included).
	payTrips, tradeTrips float64
}

// settle waits until every accepted payment's order is paid at trade (or
// within runs out) and measures the run from the attempts and the orders'
// update_time, which trade's conditional UPDATE sets when it pays one.
func (s *system) settle(tb testing.TB, orders []prepared, attempts []attempt, within time.Duration) run {
	tb.Helper()
	r := run{requests: len(attempts)}
	var ids []int64
	returnedAt := map[int64]time.Time{}
	var payLat []time.Duration
	first, lastReturned := attempts[0].sent, time.Time{}
	for i, a := range attempts {
		if a.sent.Before(first) {
			first = a.sent
		}
		if !a.ok {
			if r.firstErr == nil {
				r.firstErr = a.err
			}
			continue
		}
		r.accepted++
		ids = append(ids, orders[i].orderID)
		returnedAt[orders[i].orderID] = a.returned
		payLat = append(payLat, a.returned.Sub(a.sent))
		if a.returned.After(lastReturned) {
			lastReturned = a.returned
		}
	}
	r.pay = quantilesOf(payLat)
	r.acceptRate = perSecond(r.accepted, lastReturned.Sub(first))

	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		var paid int
		if err := s.tradeDB.QueryRow(ctx, `SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 2`, ids).Scan(&paid); err != nil {
			tb.Fatalf("count paid orders: %v", err)
		}
		if paid == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.drain = time.Since(lastReturned)

	rows, err := s.tradeDB.Query(ctx, `SELECT id, update_time FROM orders WHERE id = ANY($1) AND status = 2`, ids)
	if err != nil {
		tb.Fatalf("read paid orders: %v", err)
	}
	defer rows.Close()
	var lastPaid time.Time
	var paidLat []time.Duration
	for rows.Next() {
		var id int64
		var paidAt time.Time
		if err := rows.Scan(&id, &paidAt); err != nil {
			tb.Fatalf("scan paid order: %v", err)
		}
		r.paid++
		paidLat = append(paidLat, paidAt.Sub(returnedAt[id]))
		if paidAt.After(lastPaid) {
			lastPaid = paidAt
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("read paid orders: %v", err)
	}
	r.payToPaid = quantilesOf(paidLat)
	r.paidRate = perSecond(r.paid, lastPaid.Sub(first))
	return r
}

// sweepStep prepares n orders, pays them in a closed loop of conc workers
// and waits for trade to have paid them all.
func (s *system) sweepStep(tb testing.TB, n, conc int) run {
	tb.Helper()
	orders := s.prepare(tb, n)
	before := scrapeRelay(s.client.HTTP, s.pay.BaseURL)
	profiled := s.startProfiles(tb, conc)
	cpu, parts := startCPU(), sampleParts(s.pay.Pid(), s.trade.Pid())
	var payTrips, tradeTrips int64
	if s.payWire != nil {
		payTrips, tradeTrips = s.payWire.RoundTrips(), s.tradeWire.RoundTrips()
	}
	attempts := s.closedLoop(orders, conc)
	busy := cpu.stop()
	r := s.settle(tb, orders, attempts, 2*time.Minute)
	if r.paid > 0 && s.payWire != nil {
		r.payTrips = float64(s.payWire.RoundTrips()-payTrips) / float64(r.paid)
		r.tradeTrips = float64(s.tradeWire.RoundTrips()-tradeTrips) / float64(r.paid)
	}
	r.conc, r.cpuBusy, r.cpu = conc, busy, sampleParts(s.pay.Pid(), s.trade.Pid()).since(parts)
	profiled.Wait()
	if after := scrapeRelay(s.client.HTTP, s.pay.BaseURL); after.batches > before.batches {
		r.relayBatch = (after.events - before.events) / (after.batches - before.batches)
	}
	return r
}

// profileSeconds is how long each profile runs: within the shortest step
// of a sweep at scale 1, so that it sees only load.
const profileSeconds = 4

// startProfiles starts CPU profiles of pay and trade, when the system is
// profiled; Wait on the result waits for both to be written.
func (s *system) startProfiles(tb testing.TB, conc int) *sync.WaitGroup {
	tb.Helper()
	var wg sync.WaitGroup
	if s.cfg.profileDir == "" {
		return &wg
	}
	for proc, addr := range map[string]string{"pay": s.payDebug, "trade": s.tradeDebug} {
		path := filepath.Join(s.cfg.profileDir, fmt.Sprintf("%s-%s-c%d.pprof", s.cfg.name, proc, conc))
		wg.Go(func() {
			if err := profile(s.client.HTTP, addr, path, profileSeconds); err != nil {
				tb.Errorf("profile %s: %v", proc, err)
			}
		})
	}
	return &wg
}

// stop shuts trade, then pay, down gracefully, so that a system the bench
// is done with takes no more CPU from the next measurement.
func (s *system) stop(tb testing.TB) {
	tb.Helper()
	s.trade.Stop(tb, 20*time.Second)
	s.pay.Stop(tb, 20*time.Second)
}

// waitReady polls pay's /readyz until it answers want (200 or 503).
func (s *system) waitReady(tb testing.TB, want int) {
	tb.Helper()
	testenv.WaitFor(tb, 15*time.Second, fmt.Sprintf("pay's /readyz to answer %d", want), func() bool {
		res, err := s.client.HTTP.Get(s.pay.BaseURL + "/readyz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode == want
	})
}

// dbRoundTrip returns the p50 of a round trip that costs the server
// nothing (SELECT 1) on pay's link to its database: what the link itself
// adds to each of a payment's round trips, latency injected or not.
func (s *system) dbRoundTrip(tb testing.TB) time.Duration {
	tb.Helper()
	return selectOneP50(tb, s.payDBURL)
}

// selectOneP50 returns the p50 of SELECT 1 on one connection to rawURL.
func selectOneP50(tb testing.TB, rawURL string) time.Duration {
	tb.Helper()
	ctx := context.Background()
	cfg, err := database.ParseURL(rawURL)
	if err != nil {
		tb.Fatalf("database URL: %v", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect to %s: %v", cfg.Host, err)
	}
	defer conn.Close(ctx)
	const warm, timed = 20, 300
	trips := make([]time.Duration, 0, timed)
	for i := range warm + timed {
		start := time.Now()
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			tb.Fatalf("SELECT 1: %v", err)
		}
		if i >= warm {
			trips = append(trips, time.Since(start))
		}
	}
	return median(trips)
}

// calibrateLinks sets the latency of every link so that a round trip
// through pay's database link (slowURL) takes latency more than without
// the proxy (directURL), and returns what it was set to. The proxy's own
// hop and the wake-ups of its goroutines add a tenth of a millisecond or
// so on this kind of machine; left in, "1 ms per round trip" would be 1.1.
// Two corrections, each from a p50 of 300 round trips, bring it within a
// few microseconds of the asked latency; the bench prints what the link
// really adds in any case.
func calibrateLinks(tb testing.TB, links []*testenv.Proxy, directURL, slowURL string, latency time.Duration) time.Duration {
	tb.Helper()
	setAll := func(set time.Duration) time.Duration {
		for _, p := range links {
			p.SetLatency(set)
		}
		return set
	}
	set := setAll(latency)
	for range 2 {
		added := selectOneP50(tb, slowURL) - selectOneP50(tb, directURL)
		set = setAll(max(set-(added-latency), 0))
	}
	return set
}
