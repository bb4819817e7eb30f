package deploy

import (
	"os"
	"regexp"
	"testing"

	"github.com/paytrade/paytrade/internal/broker"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
)

// users.sh writes each service's permissions out for the default names;
// they must be what the service's own topology says it needs, no more.
func TestComposeBrokerUsersHaveExactlyTheServicesPermissions(t *testing.T) {
	script, err := os.ReadFile("rabbitmq/users.sh")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]broker.Permissions{}
	re := regexp.MustCompile(`(?m)^user (\w+) "\$\w+" \\\n\s+'([^']*)' \\\n\s+'([^']*)' \\\n\s+'([^']*)'$`)
	for _, m := range re.FindAllStringSubmatch(string(script), -1) {
		got[m[1]] = broker.Permissions{Configure: m[2], Write: m[3], Read: m[4]}
	}
	// The default names (README, docs/design.md).
	want := map[string]broker.Permissions{
		"pay": payamqp.Topology{
			Exchange: "pay.topic", TradeExchange: "trade.topic", RefundRequestedKey: "refund.requested",
			RefundQueue: "pay.refund.queue", QueueType: broker.QueueQuorum,
			ErrorExchange: "error.direct", ErrorKey: "error", ErrorQueue: "error.queue",
		}.Permissions(),
		"trade": tradeamqp.Topology{
			Exchange: "pay.topic", PaySuccessKey: "pay.success", Queue: "mark.order.pay.queue", QueueType: broker.QueueQuorum,
			ErrorExchange: "error.direct", ErrorKey: "error", ErrorQueue: "error.queue",
			TradeExchange: "trade.topic", RefundRequestedKey: "refund.requested", RefundSuccessKey: "refund.success",
			RefundQueue: "mark.order.refund.queue",
		}.Permissions(),
	}
	for user, w := range want {
		if got[user] != w {
			t.Errorf("users.sh gives %s %+v, want %+v", user, got[user], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("users.sh makes %d users, want %d", len(got), len(want))
	}
}
