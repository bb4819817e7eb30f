package testenv

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

// Against a broker on another machine (make infra's), rabbitmqctl has no
// cookie: the test's users are added through the management API instead,
// with only their permissions, and are gone after the test.
func TestBrokerUsersAreAddedThroughTheManagementAPIWithOnlyTheirPermissions(t *testing.T) {
	t.Parallel()
	node := StartRabbitNodeWithManagement(t)
	m, err := NewManagement(node.URL, node.ManagementURL)
	if err != nil {
		t.Fatal(err)
	}
	var user BrokerUser
	t.Run("with users", func(t *testing.T) {
		only := broker.Exactly("pt.allowed")
		users := addBrokerUsers(t, node.URL, mgmtAdmin{m}, map[string]broker.Permissions{
			"svc": {Configure: only, Write: only, Read: only},
		})
		user = users["svc"]
		conn, err := amqp.Dial(user.URL)
		if err != nil {
			t.Fatalf("connect as the added user: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("pt.allowed", false, true, false, false, nil); err != nil {
			t.Fatalf("declare the permitted queue: %v", err)
		}
		_, err = ch.QueueDeclare("pt.forbidden", false, true, false, false, nil)
		if e, ok := err.(*amqp.Error); !ok || e.Code != amqp.AccessRefused {
			t.Fatalf("declare a queue outside the user's permissions: %v, want 403 ACCESS_REFUSED", err)
		}
	})
	if _, err := amqp.Dial(user.URL); err == nil {
		t.Fatalf("%s still logs in after its test ended", user.Name)
	}
}
