package broker

import (
	"fmt"
	"time"

	"github.com/paytrade/paytrade/internal/config"
)

// ReadConfig reads the connection settings both services share from the
// environment: AMQP_URL (one URL, or a cluster's nodes separated by
// commas), AMQP_CONNECT_TIMEOUT, AMQP_HEARTBEAT and
// AMQP_RECONNECT_{INITIAL_INTERVAL,MULTIPLIER,MAX_INTERVAL}. name is the
// connection's name in the management UI.
func ReadConfig(r *config.Reader, name string) Config {
	c := Config{
		URL:            r.String("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		ConnectionName: name,
		ConnectTimeout: r.Duration("AMQP_CONNECT_TIMEOUT", 5*time.Second),
		Heartbeat:      r.Duration("AMQP_HEARTBEAT", 10*time.Second),
		Backoff: Backoff{
			Initial:    r.Duration("AMQP_RECONNECT_INITIAL_INTERVAL", DefaultBackoffInitial),
			Multiplier: r.Float("AMQP_RECONNECT_MULTIPLIER", DefaultBackoffMultiplier, 1),
			Max:        r.Duration("AMQP_RECONNECT_MAX_INTERVAL", DefaultBackoffMax),
		},
	}
	nodes := Nodes(c.URL)
	for i, node := range nodes {
		uri, err := ParseURL(node)
		if err != nil {
			if len(nodes) > 1 {
				err = fmt.Errorf("node %d of %d: %w", i+1, len(nodes), err)
			}
			r.Fail(fmt.Errorf("AMQP_URL: %w", err))
			continue
		}
		// Messages carry the user they were published as, and consumers
		// judge them by it: one service is one user on every node.
		if first := User(c.URL); first != "" && uri.Username != first {
			r.Fail(fmt.Errorf("AMQP_URL: node %d of %d names broker user %q, node 1 %q: give every node the service's one user", i+1, len(nodes), uri.Username, first))
		}
	}
	return c
}

// ReadSender reads the setting key (TRADE_MQ_PAY_USER, PAY_MQ_TRADE_USER):
// the broker user whose events a consumer accepts. own is the consumer's
// connection settings. In development mode it defaults to the service's
// own user, for a laptop where both share guest (and then a consumer
// cannot tell its senders apart). Otherwise it must be set, and must not
// be the service's own user: a consumer that accepts events from its own
// user takes them from whoever holds that user's password, the service
// itself included.
func ReadSender(r *config.Reader, key string, own Config, dev bool) string {
	user := r.String(key, "")
	self := User(own.URL)
	switch {
	case user == "" && dev:
		return self
	case user == "":
		r.Fail(fmt.Errorf("%s is not set: name the broker user whose events this service accepts, or PAYTRADE_DEV=1 on a laptop to share one", key))
	case user == self && !dev:
		r.Fail(fmt.Errorf("%s is %q, this service's own broker user: give each service a broker user of its own, or PAYTRADE_DEV=1 on a laptop to share one", key, user))
	}
	return user
}

// ReadConsumerConfig reads a consumer's settings from the environment,
// named after the service as Spring's spring.rabbitmq.listener.simple.*
// are: <prefix>_PREFETCH, <prefix>_RETRY_{MAX_ATTEMPTS,INITIAL_INTERVAL,
// MULTIPLIER,MAX_INTERVAL}, <prefix>_RECOVERER and <prefix>_HANDLER_TIMEOUT.
// It fills only those.
func ReadConsumerConfig(r *config.Reader, prefix string) ConsumerConfig {
	c := ConsumerConfig{
		Prefetch:       r.Int(prefix+"_PREFETCH", 16, 1),
		AttemptTimeout: r.Duration(prefix+"_HANDLER_TIMEOUT", 10*time.Second),
		Retry: Retry{
			MaxAttempts:     r.Int(prefix+"_RETRY_MAX_ATTEMPTS", 3, 1),
			InitialInterval: r.Duration(prefix+"_RETRY_INITIAL_INTERVAL", time.Second),
			Multiplier:      r.Float(prefix+"_RETRY_MULTIPLIER", 2, 1),
			MaxInterval:     r.Duration(prefix+"_RETRY_MAX_INTERVAL", 10*time.Second),
		},
	}
	recoverer, err := ParseRecoverer(r.String(prefix+"_RECOVERER", string(RecoverRepublish)))
	if err != nil {
		r.Fail(fmt.Errorf("%s_RECOVERER: %w", prefix, err))
	}
	c.Recoverer = recoverer
	return c
}
