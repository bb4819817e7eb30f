package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// The code of the fault switches, by the symbols only it has: crash points
// that SIGKILL the process, the seed's publish after the commit and its
// refund that credits every delivery (pay), its unconditional consumer and
// its refund asked anew at every request (trade), and the consumer's
// acknowledge mode none (both).
var faultCode = map[string][]string{
	"pay": {"internal/crashpoint.Parse", "internal/broker.NewInlinePublisher", "main.wirePublishMode",
		"services/pay/postgres.SeedRefunds", "internal/broker.autoAcked"},
	"trade": {"internal/crashpoint.Parse", "MarkOrderPaidUnconditionally",
		"services/trade/postgres.SeedRefunds", "internal/broker.autoAcked"},
}

// The switches, each with a value that would arm it.
var faultSwitches = map[string][]string{
	"pay":   {"PAYTRADE_CRASH_POINTS=pay-after-commit", "PAY_PUBLISH_MODE=inline", "PAY_PUBLISH_MODE=inline-confirmed", "PAY_IDEMPOTENCY=none"},
	"trade": {"PAYTRADE_CRASH_POINTS=trade-after-commit", "TRADE_ACK_MODE=none", "TRADE_IDEMPOTENCY=none"},
}

// The finding: crash points and the seed-style switches were
// reachable through the environment of the shipped binaries. A default
// build now holds none of their code (the faultinject build, which make
// chaos and make bench start, holds all of it, so the check can see it),
// and refuses to start when one is set.
func TestShippedBinariesCannotBeToldToCrashOrLosePayments(t *testing.T) {
	s := systest.New(t, "shipped")
	for _, service := range []string{"pay", "trade"} {
		pkg := "github.com/paytrade/paytrade/cmd/" + service
		shipped, faulty := symbols(t, testenv.Build(t, pkg)), symbols(t, testenv.Build(t, pkg, systest.FaultInject))
		for _, code := range faultCode[service] {
			if strings.Contains(shipped, code) {
				t.Errorf("the default build of %s holds %s", service, code)
			}
			if !strings.Contains(faulty, code) {
				t.Errorf("the faultinject build of %s lacks %s: the check cannot see what it looks for", service, code)
			}
		}
		env := s.PayEnv()
		if service == "trade" {
			env = s.TradeEnv("http://127.0.0.1:1")
		}
		for _, sw := range faultSwitches[service] {
			out, err := testenv.RunUntilExit(t, testenv.Build(t, pkg), append(env, sw), 20*time.Second)
			name, _, _ := strings.Cut(sw, "=")
			if err == nil || strings.Contains(out, "listening") || !strings.Contains(out, name) {
				t.Errorf("%s with %s: exit %v; want a refusal naming %s before listening\n%s", service, sw, err, name, out)
			}
		}
	}
}

// symbols lists the symbols of the binary at path.
func symbols(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "nm", path).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", path, err)
	}
	return string(out)
}
