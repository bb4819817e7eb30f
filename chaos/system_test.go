package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// wiring is how the services are put together for a run: the safe way,
// or the course's seed style that make chaos UNSAFE=1 demonstrates.
type wiring struct {
	name     string
	payEnv   []string
	tradeEnv []string
	// asyncReplication runs the Patroni scenarios' clusters with
	// synchronous replication off: Patroni's default, which may lose
	// acknowledged commits on failover.
	asyncReplication bool
}

var (
	safeWiring = wiring{name: "paytrade"}
	// seedWiring is what the course warns about: publish after the commit
	// with no outbox and no confirms; acknowledge mode none; no inbox; a
	// refund asked for anew at every request and credited at every delivery.
	seedWiring = wiring{
		name:             "seed-style (UNSAFE)",
		payEnv:           []string{"PAY_PUBLISH_MODE=inline", "PAY_IDEMPOTENCY=none"},
		tradeEnv:         []string{"TRADE_ACK_MODE=none", "TRADE_IDEMPOTENCY=none"},
		asyncReplication: true,
	}
)

// system is one scenario's world: a pay database, a trade database, one
// set of broker names, and the pay and trade processes started on them.
// Every process reaches RabbitMQ — and trade its database — through a
// toxiproxy proxy of its own, so a scenario can cut, stall or refuse any
// one link.
type system struct {
	*systest.System
	t       *testing.T
	wiring  wiring
	payPool *pgxpool.Pool
	trPool  *pgxpool.Pool
	proxies *testenv.Toxiproxy
	// unacked reads how many messages of the system's queues are
	// delivered and not yet acked, which AMQP does not tell.
	unacked unackedReader

	mu     sync.Mutex
	pays   []*instance
	trades []*instance
}

// instance is one pay or trade process and the address it keeps across
// restarts, so that clients and the other service find it again.
type instance struct {
	name     string
	bin      string
	addr     string
	env      []string
	amqp     *toxiproxy.Proxy // to the broker's first node
	database *toxiproxy.Proxy // trade only
	proc     *testenv.Process
}

// newSystem is a scenario's system on the broker at amqpURL (the test
// broker, a private node, a cluster), whose statistics unacked reads and
// whose broker users ctl adds (nil: the test broker's rabbitmqctl).
func newSystem(t *testing.T, w wiring, amqpURL string, ctl testenv.Ctl, unacked unackedReader) *system {
	t.Helper()
	s := &system{
		System:  systest.NewOnBroker(t, "chaos", amqpURL, ctl, systest.FaultInject),
		t:       t,
		wiring:  w,
		proxies: testenv.NewToxiproxy(),
		unacked: unacked,
	}
	s.payPool = pool(t, s.PayDB)
	s.trPool = pool(t, s.TradeDB)
	return s
}

// unackedReader returns, for each queue, how many of its messages are
// delivered and not yet acked: the broker's statistics, up to statsLag old.
type unackedReader func(queues ...string) (map[string]int, error)

// testBrokerStats reads the test broker's statistics through the broker
// itself, its management API, so that the suite runs against any broker it
// reaches (make infra's, another machine's); failing that, with rabbitmqctl
// where it can speak to the broker (root on the broker's machine). With
// neither, the test is skipped (testenv.Missing).
func testBrokerStats(t *testing.T) unackedReader {
	t.Helper()
	m, mgmtErr := testenv.TestManagement()
	if mgmtErr == nil {
		return viaManagement(m)
	}
	ctlErr := testenv.RabbitCtlAnswers(t)
	if ctlErr == nil {
		return viaCtl(func(args ...string) (string, error) {
			out, err := testenv.RabbitCtl(t, args...).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("rabbitmqctl %s: %w\n%s", strings.Join(args, " "), err, out)
			}
			return string(out), nil
		})
	}
	t.Logf("the test broker's queue statistics: %v; %v", mgmtErr, ctlErr)
	testenv.Missing(t, "the test broker's queue statistics, from its management API or rabbitmqctl",
		"enable the broker's rabbitmq_management plugin (and set "+testenv.ManagementURLEnv+
			" if it is not at port 15672 of the AMQP host), or run make test as root where the broker runs")
	return nil
}

// viaManagement reads the statistics from the broker's management API.
func viaManagement(m *testenv.Management) unackedReader {
	return func(queues ...string) (map[string]int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return m.Unacked(ctx, queues...)
	}
}

// viaCtl reads the statistics with rabbitmqctl, through ctl: for the
// private nodes and clusters a scenario starts, which run no plugins.
func viaCtl(ctl func(args ...string) (string, error)) unackedReader {
	return func(queues ...string) (map[string]int, error) {
		out, err := ctl("list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged")
		if err != nil {
			return nil, err
		}
		listed := map[string]int{}
		for _, line := range strings.Split(out, "\n") {
			var name string
			var unacked int
			if _, err := fmt.Sscan(line, &name, &unacked); err == nil {
				listed[name] = unacked
			}
		}
		n := make(map[string]int, len(queues))
		for _, q := range queues {
			u, ok := listed[q]
			if !ok {
				return nil, fmt.Errorf("queue %s not listed by the broker", q)
			}
			n[q] = u
		}
		return n, nil
	}
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// proxy starts a toxiproxy proxy to upstream on a port of its own.
func (s *system) proxy(name, upstream string) *toxiproxy.Proxy {
	s.t.Helper()
	return s.proxies.Proxy(s.t, name, upstream)
}

// proxiedURL is rawURL with its host:port replaced by the proxy's.
func proxiedURL(rawURL string, upstream string, p *toxiproxy.Proxy) string {
	return strings.Replace(rawURL, upstream, p.Listen, 1)
}

// amqpVia starts the instance's proxy to every node of amqpURL's broker
// (one, or a cluster's), keeps the first node's as in.amqp, and returns
// amqpURL (with its service's own user) reaching them through the
// proxies, in the broker's order.
func (s *system) amqpVia(in *instance, amqpURL string) string {
	s.t.Helper()
	var urls []string
	for i, node := range broker.Nodes(amqpURL) {
		upstream := testenv.HostPort(s.t, node)
		p := s.proxy(fmt.Sprintf("%s-amqp-%d", in.name, i+1), upstream)
		if in.amqp == nil {
			in.amqp = p
		}
		urls = append(urls, proxiedURL(node, upstream, p))
	}
	return strings.Join(urls, ",")
}

// addPay starts one more pay process; extraEnv stays with it across restarts.
func (s *system) addPay(extraEnv ...string) *instance {
	s.t.Helper()
	in := &instance{name: fmt.Sprintf("pay-%d", len(s.pays)+1), bin: s.Binary(s.t, "pay"), addr: testenv.FreeAddr(s.t)}
	amqpURL := s.amqpVia(in, s.PayBroker.URL)
	in.env = append(append(s.PayEnv(),
		"PAY_HTTP_ADDR="+in.addr, "AMQP_URL="+amqpURL,
		"PAY_OUTBOX_POLL_INTERVAL=200ms", "PAY_OUTBOX_RETRY_MAX_INTERVAL=2s",
		"AMQP_HEARTBEAT=2s", "AMQP_RECONNECT_MAX_INTERVAL=2s", "LOG_LEVEL=info",
	), s.wiring.payEnv...)
	in.env = append(in.env, extraEnv...)
	in.start(s.t)
	s.mu.Lock()
	s.pays = append(s.pays, in)
	s.mu.Unlock()
	return in
}

// addTrade starts one more trade process, asking the first pay; extraEnv
// stays with it across restarts.
func (s *system) addTrade(extraEnv ...string) *instance {
	s.t.Helper()
	in := &instance{name: fmt.Sprintf("trade-%d", len(s.trades)+1), bin: s.Binary(s.t, "trade"), addr: testenv.FreeAddr(s.t)}
	if len(s.trades) == 0 {
		in.addr = s.TradeAddr // the trade pay asks about orders and refunds
	}
	amqpURL := s.amqpVia(in, s.TradeBroker.URL)
	dbURL := s.TradeDB
	if !strings.Contains(dbURL, ",") {
		// One server: through a proxy the scenario can cut. A Patroni
		// cluster's nodes are reached directly; its faults are its own.
		dbUp := testenv.HostPort(s.t, s.TradeDB)
		in.database = s.proxy(in.name+"-db", dbUp)
		dbURL = proxiedURL(s.TradeDB, dbUp, in.database)
	}
	in.env = append(append(s.TradeEnv("http://"+s.pays[0].addr),
		"TRADE_DATABASE_URL="+dbURL, "TRADE_HTTP_ADDR="+in.addr,
		"AMQP_URL="+amqpURL,
		"TRADE_RETRY_INITIAL_INTERVAL=50ms", "TRADE_RETRY_MAX_INTERVAL=500ms",
		// The fallback is the last line of defence; here it is kept out
		// of the way so that what converges is the messaging path itself.
		// The message-loss scenario turns it on with a short period.
		"TRADE_PAY_CHECK_SPEC=@every 1h", "AMQP_HEARTBEAT=2s", "AMQP_RECONNECT_MAX_INTERVAL=2s", "LOG_LEVEL=info",
	), s.wiring.tradeEnv...)
	in.env = append(in.env, extraEnv...)
	in.start(s.t)
	s.mu.Lock()
	s.trades = append(s.trades, in)
	s.mu.Unlock()
	return in
}

// start starts (or restarts) the instance's process; extraEnv comes last
// and so wins over the instance's own settings.
func (in *instance) start(t *testing.T, extraEnv ...string) {
	t.Helper()
	service, _, _ := strings.Cut(in.name, "-")
	in.proc = testenv.StartProcess(t, in.bin, service, append(append([]string{}, in.env...), extraEnv...))
}

func (in *instance) baseURL() string { return "http://" + in.addr }

// payURLs are the base URLs of the pay processes, for the load's clients.
func (s *system) payURLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	urls := make([]string, len(s.pays))
	for i, in := range s.pays {
		urls[i] = in.baseURL()
	}
	return urls
}

// tradeURLs are the base URLs of the trade processes, for the load's clients.
func (s *system) tradeURLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	urls := make([]string, len(s.trades))
	for i, in := range s.trades {
		urls[i] = in.baseURL()
	}
	return urls
}

// cut closes every connection through p and refuses new ones for down.
func cut(t *testing.T, p *toxiproxy.Proxy, down time.Duration) {
	t.Helper()
	p.Stop()
	time.Sleep(down)
	if err := p.Start(); err != nil {
		t.Errorf("restart proxy %s: %v", p.Name, err)
	}
}

// blackhole makes p swallow every byte both ways, on open connections and
// new ones, until the returned function is called: the broker is there,
// and says nothing.
func blackhole(t *testing.T, p *toxiproxy.Proxy) (restore func()) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name":"blackhole-%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, stream, stream)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			t.Fatalf("blackhole %s: %v", p.Name, err)
		}
	}
	return func() {
		for _, stream := range []string{"upstream", "downstream"} {
			if err := p.Toxics.RemoveToxic(context.Background(), "blackhole-"+stream); err != nil {
				t.Errorf("lift blackhole of %s: %v", p.Name, err)
			}
		}
	}
}
