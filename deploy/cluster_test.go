package deploy

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/paytrade/paytrade/internal/broker"
)

func TestClusterProfileRunsThreeNodesOfRabbitMQ4ThatPayAndTradeReachThroughTheAddressList(t *testing.T) {
	file := secrets(t, nil)
	r := render(t, file, nil, "cluster")
	nodes := []string{"rabbitmq", "rabbitmq-2", "rabbitmq-3"}
	cookie := r.Services["rabbitmq"].Environment["RABBITMQ_COOKIE"]
	if len(cookie) < 32 {
		t.Errorf("Erlang cookie %q, want one of 32 characters or more from deploy/.env", cookie)
	}
	for _, name := range nodes {
		node, ok := r.Services[name]
		if !ok {
			t.Fatalf("the cluster profile has no service %s", name)
		}
		if !strings.HasPrefix(node.Image, "rabbitmq:4.") || !strings.Contains(node.Image, "management") {
			t.Errorf("%s runs %s, want RabbitMQ 4.x with its management UI", name, node.Image)
		}
		if node.Hostname != name {
			t.Errorf("%s has hostname %q, want %q: cluster.conf names its node rabbit@%s", name, node.Hostname, name, name)
		}
		if got := node.Environment["RABBITMQ_COOKIE"]; got != cookie {
			t.Errorf("%s has Erlang cookie %q, want the cluster's %q", name, got, cookie)
		}
	}
	for _, service := range []string{"pay", "trade"} {
		var hosts []string
		for _, node := range broker.Nodes(r.Services[service].Environment["AMQP_URL"]) {
			u, err := url.Parse(node)
			if err != nil {
				t.Fatalf("%s's AMQP_URL: %v", service, err)
			}
			hosts = append(hosts, u.Hostname())
		}
		if !slices.Equal(hosts, nodes) {
			t.Errorf("%s's AMQP_URL reaches %v, want every node %v", service, hosts, nodes)
		}
	}

	single := render(t, file, nil, "")
	for _, name := range nodes[1:] {
		if _, ok := single.Services[name]; ok {
			t.Errorf("%s runs without the cluster profile", name)
		}
	}
}
