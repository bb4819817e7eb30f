package testenv

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestRabbitNodeSurvivesAKillWithItsQueuesAndIsGoneAfterTheTest(t *testing.T) {
	var node *RabbitNode
	t.Run("node", func(t *testing.T) {
		node = StartRabbitNode(t)
		ch, err := node.Dial(t).Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("survivor", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}

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
