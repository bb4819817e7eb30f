package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Toxiproxy is an in-process toxiproxy server: proxies a test starts
// through it can be cut, stalled, blackholed or slowed with toxics.
type Toxiproxy struct {
	api *toxiproxy.ApiServer
}

// NewToxiproxy returns a server for this test's proxies.
func NewToxiproxy() *Toxiproxy {
	return &Toxiproxy{api: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// Proxy starts a proxy named name to upstream (host:port) on a free
// loopback port; it stops when the test ends.
func (x *Toxiproxy) Proxy(tb testing.TB, name, upstream string) *toxiproxy.Proxy {
	tb.Helper()
	p := toxiproxy.NewProxy(x.api, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		tb.Fatalf("start proxy %s: %v", name, err)
	}
	tb.Cleanup(p.Stop)
	return p
}

// Via returns rawURL (amqp:// or postgres://) with its host:port replaced
// by the proxy's, starting the proxy named name to it.
func (x *Toxiproxy) Via(tb testing.TB, name, rawURL string) (string, *toxiproxy.Proxy) {
	tb.Helper()
	upstream := HostPort(tb, rawURL)
	p := x.Proxy(tb, name, upstream)
	return strings.Replace(rawURL, upstream, p.Listen, 1), p
}

// AddLatency delays every reply through p (the downstream) by latency, so
// that each round trip through it takes that much longer, as between
// hosts of one data centre. The delay is steadyLatency's, set to the
// microsecond; what a round trip really gains is that plus the proxy's own
// hops, which a caller that needs the link exact measures and takes off
// with SetLatency.
func AddLatency(tb testing.TB, p *toxiproxy.Proxy, latency time.Duration) {
	tb.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(latencyToxic(latency))); err != nil {
		tb.Fatalf("add latency to %s: %v", p.Name, err)
	}
}

// SetLatency changes the delay AddLatency put on p.
func SetLatency(tb testing.TB, p *toxiproxy.Proxy, latency time.Duration) {
	tb.Helper()
	if _, err := p.Toxics.UpdateToxicJson("latency", strings.NewReader(latencyToxic(latency))); err != nil {
		tb.Fatalf("set the latency of %s: %v", p.Name, err)
	}
}

func latencyToxic(latency time.Duration) string {
	return fmt.Sprintf(`{"name":"latency","type":%q,"stream":"downstream","toxicity":1,"attributes":{"latency":%d}}`,
		steadyLatencyType, latency.Microseconds())
}
