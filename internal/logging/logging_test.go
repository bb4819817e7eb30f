package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/paytrade/paytrade/internal/correlation"
)

func TestEveryLineLoggedWithACorrelatedContextNamesTheID(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, "pay").With("component", "relay")
	log.InfoContext(correlation.WithID(context.Background(), "corr-1"), "payment committed", "pay_order_id", 7)
	log.Info("no context")

	dec := json.NewDecoder(&buf)
	var first, second map[string]any
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&second); err != nil {
		t.Fatal(err)
	}
	if first["correlation_id"] != "corr-1" || first["service"] != "pay" || first["component"] != "relay" || first["pay_order_id"] != 7.0 {
		t.Errorf("first line %v", first)
	}
	if _, ok := second["correlation_id"]; ok {
		t.Errorf("a line without a correlated context has correlation_id: %v", second)
	}
}
