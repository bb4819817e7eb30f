// Package crashpoint kills the process at named places in the code, so fault
// tests can prove what survives a crash at exactly the worst moment — after a
// commit and before the publish, after a publish and before its bookkeeping.
// A panic would not do: net/http recovers panics in handlers, and deferred
// cleanup would run; SIGKILL runs nothing.
//
// Only a binary built with -tags faultinject (make chaos, make bench and the
// crash tests build so) can arm a crash point; in the default build a Set is
// empty, Hit does nothing, and Parse does not exist.
package crashpoint

// The crash points the services know.
const (
	PayAfterCommit    = "pay-after-commit"    // payment committed, event not yet published, response not sent
	RelayAfterConfirm = "relay-after-confirm" // broker confirmed a batch, outbox rows not yet deleted
	TradeAfterCommit  = "trade-after-commit"  // order marked paid and committed, delivery not yet acked

	TradeAfterRefundCommit = "trade-after-refund-commit" // refund and its event committed, not yet published, response not sent
	PayAfterRefundCommit   = "pay-after-refund-commit"   // credit and refund.success committed, not yet published, delivery not acked
)
