package main

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/testenv"
)

func TestErrorsListReportsAMissingQueue(t *testing.T) {
	t.Parallel()
	amqpURL := testenv.AMQPURL(t)
	queue := testenv.Name(t, "no.such.queue")
	_, _, err := runCtl(t, env(map[string]string{"AMQP_URL": amqpURL}), "errors", "list", "-queue", queue)
	if err == nil || !strings.Contains(err.Error(), queue) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("errors list of a missing queue = %v, want an error saying %s does not exist", err, queue)
	}
}

func TestErrorsListSaysSoWhenTheBrokerDropsWhatItListed(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	// An error queue declared by other means, whose broker gives up on a
	// message at its first return: every listing loses what it shows.
	lossy := testenv.Name(t, "lossy.error.queue")
	testenv.DeleteOnCleanup(t, f.amqpURL, nil, []string{lossy})
	if _, err := f.pub.QueueDeclare(lossy, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(0)}); err != nil {
		t.Fatalf("declare %s: %v", lossy, err)
	}
	f.errorQueue = lossy
	f.park(t, f.parkedMessage("m1"), f.parkedMessage("m2"))

	stdout, _, err := runCtl(t, env(map[string]string{"AMQP_URL": f.amqpURL, "MQ_ERROR_QUEUE": lossy}), "errors", "list")
	if err == nil || !strings.Contains(err.Error(), "2 fewer than it should") {
		t.Errorf("errors list of a queue that dropped what it listed: error %v, want it to say 2 messages are missing", err)
	}
	if strings.Contains(stdout, "all left") || !strings.Contains(stdout, "NOT all of them back") {
		t.Errorf("errors list stdout = %q, want no claim that all are left", stdout)
	}
}
