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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/paytrade/paytrade/internal/testenv"
)

const secret = "chaos-secret"

// wiring is how the services are put together for a run: the safe way,
// or the course's seed style that make chaos UNSAFE=1 demonstrates.
type wiring struct {
	name     string
	payEnv   []string
	tradeEnv []string
}

var (
	safeWiring = wiring{name: "paytrade"}
	// seedWiring is what the course warns about: publish after the commit
	// with no outbox and no confirms; acknowledge mode none; no inbox.
	seedWiring = wiring{
		name:     "seed-style (UNSAFE)",
		payEnv:   []string{"PAY_PUBLISH_MODE=inline"},
		tradeEnv: []string{"TRADE_ACK_MODE=none", "TRADE_IDEMPOTENCY=none"},
	}
)

// system is one scenario's world: a pay database, a trade database, one
// set of broker names, and the pay and trade processes started on them.
// Every process reaches RabbitMQ — and trade its database — through a
// toxiproxy proxy of its own, so a scenario can cut, stall or refuse any
// one link.
type system struct {
	t        *testing.T
	wiring   wiring
	amqpURL  string
	payDB    string
	tradeDB  string
	exchange string
	queue    string
	errQueue string
	payPool  *pgxpool.Pool
	trPool   *pgxpool.Pool
	proxies  *toxiproxy.ApiServer

	tradeEnvCommon []string

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
	amqp     *toxiproxy.Proxy
	database *toxiproxy.Proxy // trade only
	proc     *testenv.Process
}

func newSystem(t *testing.T, w wiring) *system {
	t.Helper()
	amqpURL := testenv.AMQPURL(t)
	s := &system{
		t:        t,
		wiring:   w,
		amqpURL:  amqpURL,
		payDB:    testenv.NewEmptyDatabase(t, "chaos_pay"),
		tradeDB:  testenv.NewEmptyDatabase(t, "chaos_trade"),
		exchange: testenv.Name(t, "pay.topic"),
		queue:    testenv.Name(t, "mark.order.pay.queue"),
		errQueue: testenv.Name(t, "error.queue"),
		proxies:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
	}
	errExchange := testenv.Name(t, "error.direct")
	testenv.DeleteOnCleanup(t, amqpURL, []string{s.exchange, errExchange}, []string{s.queue, s.errQueue})
	s.tradeEnvCommon = []string{
		"MQ_MARK_ORDER_PAY_QUEUE=" + s.queue, "MQ_ERROR_EXCHANGE=" + errExchange, "MQ_ERROR_QUEUE=" + s.errQueue,
	}
	s.payPool = pool(t, s.payDB)
	s.trPool = pool(t, s.tradeDB)
	return s
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
	p := toxiproxy.NewProxy(s.proxies, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		s.t.Fatalf("start proxy %s: %v", name, err)
	}
	s.t.Cleanup(p.Stop)
	return p
}

// proxiedURL is rawURL with its host:port replaced by the proxy's.
func proxiedURL(rawURL string, upstream string, p *toxiproxy.Proxy) string {
	return strings.Replace(rawURL, upstream, p.Listen, 1)
}

// addPay starts one more pay process; extraEnv stays with it across restarts.
func (s *system) addPay(extraEnv ...string) *instance {
	s.t.Helper()
	upstream := testenv.HostPort(s.t, s.amqpURL)
	in := &instance{name: fmt.Sprintf("pay-%d", len(s.pays)+1), bin: testenv.Build(s.t, "github.com/paytrade/paytrade/cmd/pay"), addr: testenv.FreeAddr(s.t)}
	in.amqp = s.proxy(in.name+"-amqp", upstream)
	in.env = append([]string{
		"PAY_DATABASE_URL=" + s.payDB, "PAY_HTTP_ADDR=" + in.addr,
		"AMQP_URL=" + proxiedURL(s.amqpURL, upstream, in.amqp), "AUTH_JWT_SECRET=" + secret, "MQ_PAY_EXCHANGE=" + s.exchange,
		"PAY_BCRYPT_COST=4", "PAY_OUTBOX_POLL_INTERVAL=200ms", "PAY_OUTBOX_RETRY_MAX_INTERVAL=2s",
		"AMQP_HEARTBEAT=2s", "AMQP_RECONNECT_MAX_INTERVAL=2s", "LOG_LEVEL=info",
	}, s.wiring.payEnv...)
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
	amqpUp := testenv.HostPort(s.t, s.amqpURL)
	dbUp := testenv.HostPort(s.t, s.tradeDB)
	in := &instance{name: fmt.Sprintf("trade-%d", len(s.trades)+1), bin: testenv.Build(s.t, "github.com/paytrade/paytrade/cmd/trade"), addr: testenv.FreeAddr(s.t)}
	in.amqp = s.proxy(in.name+"-amqp", amqpUp)
	in.database = s.proxy(in.name+"-db", dbUp)
	in.env = append(append([]string{
		"TRADE_DATABASE_URL=" + proxiedURL(s.tradeDB, dbUp, in.database), "TRADE_HTTP_ADDR=" + in.addr,
		"AMQP_URL=" + proxiedURL(s.amqpURL, amqpUp, in.amqp), "AUTH_JWT_SECRET=" + secret, "MQ_PAY_EXCHANGE=" + s.exchange,
		"PAY_SERVICE_URL=http://" + s.pays[0].addr,
		"TRADE_RETRY_INITIAL_INTERVAL=50ms", "TRADE_RETRY_MAX_INTERVAL=500ms",
		// The fallback is the last line of defence; here it is kept out
		// of the way so that what converges is the messaging path itself.
		// The message-loss scenario turns it on with a short period.
		"TRADE_PAY_CHECK_SPEC=@every 1h", "AMQP_HEARTBEAT=2s", "AMQP_RECONNECT_MAX_INTERVAL=2s", "LOG_LEVEL=info",
	}, s.tradeEnvCommon...), s.wiring.tradeEnv...)
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
