// Package crashpoint kills the process at named places in the code, so fault
// tests can prove what survives a crash at exactly the worst moment — after a
// commit and before the publish, after a publish and before its bookkeeping.
// A panic would not do: net/http recovers panics in handlers, and deferred
// cleanup would run; SIGKILL runs nothing.
package crashpoint

import (
	"os"
	"strings"
	"syscall"
)

// The crash points the services know.
const (
	PayAfterCommit    = "pay-after-commit"    // payment committed, relay not yet woken, response not sent
	RelayAfterConfirm = "relay-after-confirm" // broker confirmed a batch, outbox rows not yet deleted
	TradeAfterCommit  = "trade-after-commit"  // order marked paid and committed, delivery not yet acked
)

// Set is the crash points armed in this process; the zero Set arms none.
type Set map[string]bool

// Parse arms the comma-separated crash point names in spec (usually the
// PAYTRADE_CRASH_POINTS environment variable).
func Parse(spec string) Set {
	s := Set{}
	for _, name := range strings.Split(spec, ",") {
		if name = strings.TrimSpace(name); name != "" {
			s[name] = true
		}
	}
	return s
}

// Hit kills the process with SIGKILL if name is armed.
func (s Set) Hit(name string) {
	if !s[name] {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not deliverable late, but never run on past it
}
