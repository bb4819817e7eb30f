package broker_test

import (
	"math"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/broker"
)

func TestBackoffNext(t *testing.T) {
	custom := broker.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3}
	tests := []struct {
		name    string
		backoff broker.Backoff
		current time.Duration
		want    time.Duration
	}{
		{"zero value starts at the default initial", broker.Backoff{}, 0, 500 * time.Millisecond},
		{"zero value doubles", broker.Backoff{}, 500 * time.Millisecond, time.Second},
		{"zero value caps at the default max", broker.Backoff{}, 20 * time.Second, 30 * time.Second},
		{"zero value stays at max", broker.Backoff{}, 30 * time.Second, 30 * time.Second},
		{"custom starts at initial", custom, 0, 100 * time.Millisecond},
		{"custom multiplies", custom, 100 * time.Millisecond, 300 * time.Millisecond},
		{"custom caps at max", custom, 900 * time.Millisecond, time.Second},
		{"negative current starts over", custom, -time.Second, 100 * time.Millisecond},
		{"multiplier 1 is constant", broker.Backoff{Initial: time.Second, Multiplier: 1}, time.Second, time.Second},
		{"multiplier below 1 takes the default", broker.Backoff{Initial: time.Second, Multiplier: 0.5}, time.Second, 2 * time.Second},
		{"only max set keeps the default initial", broker.Backoff{Max: time.Minute}, 0, 500 * time.Millisecond},
		{"huge current does not overflow", broker.Backoff{}, math.MaxInt64 / 2, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.backoff.Next(tt.current); got != tt.want {
				t.Errorf("%+v.Next(%v) = %v, want %v", tt.backoff, tt.current, got, tt.want)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		outcome broker.Outcome
		want    string
	}{
		{broker.Unconfirmed, "unconfirmed"},
		{broker.Acked, "acked"},
		{broker.Nacked, "nacked"},
		{broker.Returned, "returned"},
		{broker.Outcome(9), "Outcome(9)"},
	}
	for _, tt := range tests {
		if got := tt.outcome.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(tt.outcome), got, tt.want)
		}
	}
}
