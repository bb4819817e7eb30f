package testenv

import (
	"strings"
	"testing"

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
