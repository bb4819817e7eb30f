package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// span is one span as the collector received it.
type span struct {
	service, name     string
	kind              tracepb.Span_SpanKind
	trace, id, parent string
	start             uint64
	attrs             map[string]string
	links             []string // span ids
	redelivered       bool
}

func (s span) String() string {
	return fmt.Sprintf("%s %q (id %s, parent %s)", s.service, s.name, s.id, s.parent)
}

// collector is an OTLP/HTTP trace receiver inside the test.
type collector struct {
	url string
	mu  sync.Mutex
	all []span
	// hold, if not nil, keeps every export request unanswered until it
	// is closed: a collector that accepts and never answers.
	hold    chan struct{}
	holding int
}

func newCollector(t *testing.T, hold bool) *collector {
	t.Helper()
	c := &collector{}
	if hold {
		c.hold = make(chan struct{})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(c.export)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		if c.hold != nil {
			close(c.hold)
		}
		_ = srv.Close()
	})
	c.url = "http://" + ln.Addr().String()
	return c
}

func (c *collector) export(w http.ResponseWriter, r *http.Request) {
	if c.hold != nil {
		c.mu.Lock()
		c.holding++
		c.mu.Unlock()
		<-c.hold
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []span
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.Resource.GetAttributes() {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := span{service: service, name: s.Name, kind: s.Kind, trace: hex.EncodeToString(s.TraceId),
					id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
					start: s.StartTimeUnixNano, attrs: map[string]string{}}
				for _, a := range s.Attributes {
					sp.attrs[a.Key] = a.Value.GetStringValue()
					if a.Key == "messaging.rabbitmq.message.redelivered" {
						sp.redelivered = a.Value.GetBoolValue()
					}
				}
				for _, l := range s.Links {
					sp.links = append(sp.links, hex.EncodeToString(l.SpanId))
				}
				got = append(got, sp)
			}
		}
	}
	c.mu.Lock()
	c.all = append(c.all, got...)
	c.mu.Unlock()
	res, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(res)
}

func (c *collector) spans() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all)
}

func (c *collector) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holding
}

// env is the OTEL_* settings that send both services' spans to c, soon.
func (c *collector) env() []string {
	return []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=" + c.url, "OTEL_BSP_SCHEDULE_DELAY=100"}
}

// find returns the first span that match accepts, waiting for it.
func (c *collector) find(t *testing.T, what string, match func(span) bool) span {
	t.Helper()
	var found span
	testenv.WaitFor(t, 10*time.Second, what, func() bool {
		for _, s := range c.spans() {
			if match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// chain waits for the spans of trace, each the child of the one before,
// as links names them, from root on: [service, name prefix, kind] each.
// It returns them in that order.
func (c *collector) chain(t *testing.T, root span, links ...[3]string) []span {
	t.Helper()
	got := []span{root}
	for _, l := range links {
		parent := got[len(got)-1]
		child := c.find(t, fmt.Sprintf("%s span %q, child of %v", l[0], l[1], parent), func(s span) bool {
			return s.trace == root.trace && s.parent == parent.id && s.service == l[0] && strings.HasPrefix(s.name, l[1]) && s.kind.String() == l[2]
		})
		if child.start < parent.start {
			t.Errorf("%v starts before its parent %v", child, parent)
		}
		got = append(got, child)
	}
	return got
}

// logTrace prints a trace as the test saw it.
func logTrace(t *testing.T, what string, spans []span) {
	t.Helper()
	var b strings.Builder
	for i, s := range spans {
		fmt.Fprintf(&b, "\n  %d. %s %-28q %-22s span %s parent %s", i+1, s.service, s.name, s.kind, s.id, s.parent)
	}
	t.Logf("%s: trace %s%s", what, spans[0].trace, b.String())
}

const (
	server   = "SPAN_KIND_SERVER"
	producer = "SPAN_KIND_PRODUCER"
	consumer = "SPAN_KIND_CONSUMER"
)

func TestAPaymentAndItsRefundAreEachOneTraceAcrossBothServices(t *testing.T) {
	t.Parallel()
	col := newCollector(t, false)
	s := startSystem(t, systest.New(t, "e2e"), nil, col.env()...)
	trade := s.startTrade(t, col.env()...)
	b, o := s.paidOrder(t, trade)

	pay := col.find(t, "pay's span of the payment request", func(sp span) bool {
		return sp.service == "pay" && sp.name == "POST /pay-orders/{id}"
	})
	if pay.parent != "" {
		t.Errorf("the payment request's span has parent %s, want a new trace", pay.parent)
	}
	payment := col.chain(t, pay,
		[3]string{"pay", "publish " + s.PayExchange, producer},
		[3]string{"trade", "process " + s.PayQueue, consumer})
	if publish := payment[1]; !slices.Contains(publish.links, pay.id) || publish.attrs["messaging.message.id"] == "" {
		t.Errorf("the relay's publish %v links to %v, message id %q; want a link to the payment's span and the message id",
			publish, publish.links, publish.attrs["messaging.message.id"])
	}
	if p := payment[2]; p.attrs["messaging.system"] != "rabbitmq" || p.attrs["messaging.operation.type"] != "process" ||
		p.attrs["messaging.message.id"] != payment[1].attrs["messaging.message.id"] {
		t.Errorf("consumer span attributes %v: want messaging.system rabbitmq, operation process and the published message id", p.attrs)
	}
	logTrace(t, "payment", payment)

	// trade's call to pay to apply for the pay order is one trace too.
	apply := col.find(t, "trade's span of applying for the pay order", func(sp span) bool {
		return sp.service == "trade" && sp.name == "POST /orders/{id}/pay-order"
	})
	logTrace(t, "apply through trade", col.chain(t, apply,
		[3]string{"trade", "POST /pay-orders", "SPAN_KIND_CLIENT"},
		[3]string{"pay", "POST /pay-orders", server}))

	s.refund(t, trade, b, o.ID)
	testenv.WaitFor(t, 5*time.Second, "the order to be refunded", func() bool {
		return refundedOrder(t, trade, b, o.ID).Status == 7
	})
	ask := col.find(t, "trade's span of the refund request", func(sp span) bool {
		return sp.service == "trade" && sp.name == "POST /orders/{id}/refund"
	})
	refund := col.chain(t, ask,
		[3]string{"trade", "publish " + s.TradeExchange, producer},
		[3]string{"pay", "process " + s.PayRefundQueue, consumer},
		[3]string{"pay", "publish " + s.PayExchange, producer},
		[3]string{"trade", "process " + s.RefundQueue, consumer})
	if refund[0].trace == payment[0].trace {
		t.Errorf("the refund is in the payment's trace %s, want a trace of its own", refund[0].trace)
	}
	logTrace(t, "refund", refund)
}

func TestARedeliveredMessageStaysInItsTrace(t *testing.T) {
	t.Parallel()
	col := newCollector(t, false)
	s := startSystem(t, systest.New(t, "e2e", systest.FaultInject), nil, col.env()...)
	first := s.startTrade(t, append(col.env(), "PAYTRADE_CRASH_POINTS="+crashpoint.TradeAfterCommit)...)
	b := s.newBuyer(t, 1, 100_000)
	_, po := s.orderAndApply(t, first, b, 10_000)
	s.payOrder(t, b, po)
	first.WaitKilled(t, 10*time.Second)
	s.startTrade(t, col.env()...)

	pay := col.find(t, "pay's span of the payment request", func(sp span) bool {
		return sp.service == "pay" && sp.name == "POST /pay-orders/{id}"
	})
	chain := col.chain(t, pay,
		[3]string{"pay", "publish " + s.PayExchange, producer},
		[3]string{"trade", "process " + s.PayQueue, consumer})
	if !chain[2].redelivered {
		t.Errorf("trade's span in the payment's trace is %v, not the redelivery's: the killed process sent none", chain[2])
	}
	logTrace(t, "payment redelivered after trade was killed", chain)
}

func TestACollectorThatNeverAnswersHoldsUpNoPayment(t *testing.T) {
	t.Parallel()
	col := newCollector(t, true)
	s := startSystem(t, systest.New(t, "e2e"), nil, col.env()...)
	trade := s.startTrade(t, col.env()...)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 1_000)
	s.payOrder(t, b, po)
	// Both services' exporters are now stuck on a request the collector
	// never answers: everything after runs while they are.
	testenv.WaitFor(t, 10*time.Second, "both services' exports to be held", func() bool { return col.held() >= 2 })
	testenv.WaitFor(t, 5*time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
	for range 20 {
		o, po := s.orderAndApply(t, trade, b, 1_000)
		s.payOrder(t, b, po)
		testenv.WaitFor(t, 5*time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
	}
	if n := len(col.spans()); n != 0 {
		t.Fatalf("the collector received %d spans, want none: it never answered", n)
	}
}
