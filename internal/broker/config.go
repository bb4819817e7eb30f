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
		if _, err := ParseURL(node); err != nil {
			if len(nodes) > 1 {
				err = fmt.Errorf("node %d of %d: %w", i+1, len(nodes), err)
			}
			r.Fail(fmt.Errorf("AMQP_URL: %w", err))
		}
	}
	return c
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
