// Package systest runs the whole system for the suites that test it from
// outside (e2e, chaos, bench): it builds the real pay and trade binaries,
// starts them on databases and broker names of their own, mints the tokens
// a client needs and speaks the services' HTTP API, so that a new scenario
// is a few lines.
package systest

import (
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
)

// System is one pay database, one trade database and one set of broker
// names, shared by every process a test starts on them.
type System struct {
	// AMQPURL reaches the broker as its administrator, for the test's own
	// look at queues; the services never use it.
	AMQPURL string
	// PayBroker and TradeBroker are each service's own broker user, with
	// only the permissions that service needs on this test's names; or,
	// where no users can be added (testenv.TestBrokerUsers), both the
	// test broker's own, and the services then run in development mode.
	PayBroker, TradeBroker testenv.BrokerUser
	sharedUser             bool
	// PayDB and TradeDB are empty databases of this test; each binary
	// migrates its own at start-up.
	PayDB, TradeDB string
	// Every exchange and queue the services declare, named for this test.
	testenv.Topology
	// Tags are the build tags the binaries are built with.
	Tags []string
	// Keys signs every token sent to the system (authtest.Shared);
	// PayKeys and TradeKeys are each service's key directory: its own
	// private key and the public keys.
	Keys               *authtest.Keys
	PayKeys, TradeKeys string
	// TradeAddr is where the system's trade listens, one process at a
	// time: pay must know it before trade starts, to ask trade which orders
	// and refunds it issued.
	TradeAddr string
}

// FaultInject is the build tag of binaries that obey crash points and the
// seed-style switches: what make chaos, make bench and the crash tests
// start. The default build has neither.
const FaultInject = "faultinject"

// New makes a system's databases and broker names, all removed when the
// test ends. prefix names the databases (e2e, chaos, bench); tags are the
// build tags of the binaries it will start.
func New(tb testing.TB, prefix string, tags ...string) *System {
	tb.Helper()
	return NewOnBroker(tb, prefix, "", nil, tags...)
}

// NewOnBroker is New on the broker of amqpURL (a cluster's AMQP_URL, say),
// whose users ctl adds; "" and nil are the test broker.
func NewOnBroker(tb testing.TB, prefix, amqpURL string, ctl testenv.Ctl, tags ...string) *System {
	tb.Helper()
	if amqpURL == "" {
		amqpURL = testenv.AMQPURL(tb)
	}
	keys := authtest.Shared(tb)
	s := &System{
		Keys:      keys,
		PayKeys:   keys.Dir(tb, auth.IssuerPay),
		TradeKeys: keys.Dir(tb, auth.IssuerTrade),
		TradeAddr: testenv.FreeAddr(tb),
		AMQPURL:   amqpURL,
		PayDB:     testenv.NewEmptyDatabase(tb, prefix+"_pay"),
		TradeDB:   testenv.NewEmptyDatabase(tb, prefix+"_trade"),
		Topology:  testenv.NewTopology(tb, amqpURL),
		Tags:      tags,
	}
	if ctl == nil {
		if err := testenv.TestBrokerUsers(tb); err != nil {
			tb.Log(err)
			testenv.Partly(tb, testenv.BrokerUsersNeed,
				"pay and trade share the test broker's user, as in development mode, and trade cannot tell pay's messages from a forger's",
				"sudo make test")
			shared := testenv.BrokerUser{Name: testenv.UserOf(tb, amqpURL), URL: amqpURL}
			s.PayBroker, s.TradeBroker, s.sharedUser = shared, shared, true
			return s
		}
	}
	users := testenv.NewBrokerUsers(tb, amqpURL, ctl, map[string]broker.Permissions{
		"pay": s.PayTopology().Permissions(), "trade": s.TradeTopology().Permissions(),
	})
	s.PayBroker, s.TradeBroker = users["pay"], users["trade"]
	return s
}

// PayTopology is pay's part of the test's names, as pay reads them.
func (s *System) PayTopology() payamqp.Topology {
	return payamqp.Topology{
		Exchange: s.PayExchange, TradeExchange: s.TradeExchange, RefundRequestedKey: "refund.requested",
		RefundQueue: s.PayRefundQueue, QueueType: broker.QueueQuorum,
		ErrorExchange: s.ErrorExchange, ErrorKey: "error", ErrorQueue: s.ErrorQueue,
	}
}

// TradeTopology is trade's part of the test's names, as trade reads them.
func (s *System) TradeTopology() tradeamqp.Topology {
	return tradeamqp.Topology{
		Exchange: s.PayExchange, PaySuccessKey: "pay.success", Queue: s.PayQueue, QueueType: broker.QueueQuorum,
		ErrorExchange: s.ErrorExchange, ErrorKey: "error", ErrorQueue: s.ErrorQueue,
		TradeExchange: s.TradeExchange, RefundRequestedKey: "refund.requested", RefundSuccessKey: "refund.success",
		RefundQueue: s.RefundQueue,
	}
}

// PayEnv is the environment every pay process of the system starts with,
// on port 0, asking the trade at TradeAddr. A later entry of the same
// name wins, so a caller appends what it changes.
func (s *System) PayEnv() []string {
	return append(s.devEnv(), append([]string{
		"PAY_DATABASE_URL=" + s.PayDB, "PAY_HTTP_ADDR=127.0.0.1:0",
		"AMQP_URL=" + s.PayBroker.URL, "PAY_MQ_TRADE_USER=" + s.TradeBroker.Name,
		"PAYTRADE_KEYS_DIR=" + s.PayKeys, testenv.PayPeppersEnv, "TRADE_SERVICE_URL=http://" + s.TradeAddr,
	}, s.Topology.Env()...)...)
}

// TradeEnv is the environment every trade process of the system starts
// with, on TradeAddr, asking the pay at payURL.
func (s *System) TradeEnv(payURL string) []string {
	return append(s.devEnv(), append([]string{
		"TRADE_DATABASE_URL=" + s.TradeDB, "TRADE_HTTP_ADDR=" + s.TradeAddr,
		"AMQP_URL=" + s.TradeBroker.URL, "TRADE_MQ_PAY_USER=" + s.PayBroker.Name,
		"PAYTRADE_KEYS_DIR=" + s.TradeKeys, "PAY_SERVICE_URL=" + payURL,
	}, s.Topology.Env()...)...)
}

// devEnv is PAYTRADE_DEV=1 where both services share one broker user,
// which only development mode accepts.
func (s *System) devEnv() []string {
	if s.sharedUser {
		return []string{"PAYTRADE_DEV=1"}
	}
	return nil
}

// Binary builds cmd/<service> with the system's build tags (once per test
// binary) and returns the executable's path.
func (s *System) Binary(tb testing.TB, service string) string {
	tb.Helper()
	return testenv.Build(tb, "github.com/paytrade/paytrade/cmd/"+service, s.Tags...)
}

// StartPay starts a pay process with env (PayEnv and what the caller
// changes) and waits until it listens.
func (s *System) StartPay(tb testing.TB, env []string) *testenv.Process {
	tb.Helper()
	return testenv.StartProcess(tb, s.Binary(tb, "pay"), "pay", env)
}

// StartTrade starts a trade process with env (TradeEnv and what the caller
// changes) and waits until it listens.
func (s *System) StartTrade(tb testing.TB, env []string) *testenv.Process {
	tb.Helper()
	return testenv.StartProcess(tb, s.Binary(tb, "trade"), "trade", env)
}

// UserToken is a bearer token of the user id, for both services, signed
// with the users' key of authtest.Shared.
func UserToken(tb testing.TB, id int64) string {
	tb.Helper()
	return authtest.Shared(tb).User(tb, id)
}

// OperatorToken is a bearer token of an operator named subject, signed with
// the operator key of authtest.Shared: what opens wallets and deposits in
// the tests, which trade's service token cannot.
func OperatorToken(tb testing.TB, subject string) string {
	tb.Helper()
	return authtest.Shared(tb).Operator(tb, subject)
}
