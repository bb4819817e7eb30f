package testenv

import (
	"net"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestRabbitNodeSurvivesAKillWithItsQueuesAndIsGoneAfterTheTest(t *testing.T) {
	var node *RabbitNode
	started := t.Run("node", func(t *testing.T) {
		node = StartRabbitNode(t)
		ch, err := node.Dial(t).Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("survivor", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}

		// What this test proves is that Kill and Start keep the node's
		// data; a SIGKILL within milliseconds of a fresh node's first
		// declaration lost the queue one run in three on a quiet machine,
		// so the metadata store's log is synced first (with Khepri, in
		// RabbitMQ 4.x, the call fails and changes nothing).
		_, _ = node.TryCtl("eval", "mnesia:sync_log().")
		node.Kill(t)
		if conn, err := net.DialTimeout("tcp", node.Addr, time.Second); err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections after Kill", node.Name)
		}

		node.Start(t)
		ch, err = node.Dial(t).Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive("survivor", true, false, false, false, nil); err != nil {
			t.Fatalf("durable queue lost across a kill and restart: %v", err)
		}
	})
	if node == nil {
		if started {
			t.Skip("no node could start here (see the subtest)")
		}
		t.Fatal("no node started")
	}
	if conn, err := net.DialTimeout("tcp", node.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after its test ended", node.Name)
	}
	if _, err := os.Stat(node.dir); !os.IsNotExist(err) {
		t.Errorf("files of %s left behind: %v", node.Name, err)
	}
}

func TestRabbitClusterKeepsAQuorumQueueWhoseLeaderIsKilled(t *testing.T) {
	c := StartRabbitCluster(t, 3)
	ch, err := c.Nodes[0].Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("replicated", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		dc, err := ch.PublishWithDeferredConfirm("", "replicated", true, false, amqp.Publishing{Body: []byte("m")})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish: %v", err)
		}
	}

	leader := c.Leader(t, "replicated")
	leader.Kill(t)
	var survivor *RabbitNode
	for _, n := range c.Nodes {
		if n != leader {
			survivor = n
		}
	}
	WaitFor(t, 30*time.Second, "a new leader", func() bool { return c.Leader(t, "replicated") != leader })
	sch, err := survivor.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 30*time.Second, "the 10 messages on "+survivor.Name, func() bool {
		q, err := sch.QueueDeclarePassive("replicated", true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		return err == nil && q.Messages == 10
	})
	leader.Start(t)
}
