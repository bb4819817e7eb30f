package testenv

import "testing"

// Topology is a test's own name for everything pay and trade declare on
// the broker, so tests that run the services side by side never share an
// exchange or a queue. Every one is deleted when the test ends.
type Topology struct {
	PayExchange    string // MQ_PAY_EXCHANGE
	TradeExchange  string // MQ_TRADE_EXCHANGE
	PayQueue       string // MQ_MARK_ORDER_PAY_QUEUE
	RefundQueue    string // MQ_MARK_ORDER_REFUND_QUEUE
	PayRefundQueue string // MQ_PAY_REFUND_QUEUE
	ErrorExchange  string // MQ_ERROR_EXCHANGE
	ErrorQueue     string // MQ_ERROR_QUEUE
}

// NewTopology names a topology for this test and deletes it when the test ends.
func NewTopology(tb testing.TB, amqpURL string) Topology {
	tb.Helper()
	t := Topology{
		PayExchange:    Name(tb, "pay.topic"),
		TradeExchange:  Name(tb, "trade.topic"),
		PayQueue:       Name(tb, "mark.order.pay.queue"),
		RefundQueue:    Name(tb, "mark.order.refund.queue"),
		PayRefundQueue: Name(tb, "pay.refund.queue"),
		ErrorExchange:  Name(tb, "error.direct"),
		ErrorQueue:     Name(tb, "error.queue"),
	}
	DeleteOnCleanup(tb, amqpURL, []string{t.PayExchange, t.TradeExchange, t.ErrorExchange},
		[]string{t.PayQueue, t.RefundQueue, t.PayRefundQueue, t.ErrorQueue})
	return t
}

// Env is the topology as both services' MQ_* settings, NAME=value.
func (t Topology) Env() []string {
	var env []string
	for k, v := range t.Map() {
		env = append(env, k+"="+v)
	}
	return env
}

// Map is the topology as both services' MQ_* settings.
func (t Topology) Map() map[string]string {
	return map[string]string{
		"MQ_PAY_EXCHANGE":            t.PayExchange,
		"MQ_TRADE_EXCHANGE":          t.TradeExchange,
		"MQ_MARK_ORDER_PAY_QUEUE":    t.PayQueue,
		"MQ_MARK_ORDER_REFUND_QUEUE": t.RefundQueue,
		"MQ_PAY_REFUND_QUEUE":        t.PayRefundQueue,
		"MQ_ERROR_EXCHANGE":          t.ErrorExchange,
		"MQ_ERROR_QUEUE":             t.ErrorQueue,
	}
}
