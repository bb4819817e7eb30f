package broker

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestParkedHeadersReadBackWhatParkingWrote: what paytradectl reads from a
// parked message is what the consumer wrote when it parked it, and the
// headers parking added are exactly those a replay strips.
func TestParkedHeadersReadBackWhatParkingWrote(t *testing.T) {
	d := amqp.Delivery{
		Exchange: "pay.topic", RoutingKey: "pay.success", UserId: "pay", MessageId: "m1",
		Headers: amqp.Table{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		Type:    "pay.success", Body: []byte(`{}`),
	}
	failedAt := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	msg := parkedCopy(d, "error.direct", "error", "retries_exhausted", 3, errors.New("database on fire"), failedAt)

	got := ParkedHeaders(msg.Publishing.Headers)
	want := Parked{
		Exchange: "pay.topic", RoutingKey: "pay.success", HasExchange: true, HasRoutingKey: true,
		Attempts: 3, FailedAt: "2026-12-04T18:00:00Z", ExceptionType: "retries_exhausted", ExceptionMessage: "database on fire",
	}
	if got != want {
		t.Errorf("ParkedHeaders(parked copy) = %+v, want %+v", got, want)
	}
	if !got.Replayable() {
		t.Error("a parked copy is not replayable")
	}
	parked := amqp.Delivery{Headers: msg.Publishing.Headers, UserId: "trade"}
	if user := OriginalUser(parked); user != "pay" {
		t.Errorf("OriginalUser = %q, want the first publisher, pay", user)
	}
	for k := range msg.Publishing.Headers {
		_, first := d.Headers[k]
		if added := !first; IsParkingHeader(k) != added {
			t.Errorf("header %q: IsParkingHeader = %v, but parking added it: %v", k, !added, added)
		}
	}
	if msg.Publishing.MessageId != d.MessageId || string(msg.Publishing.Body) != string(d.Body) || msg.Publishing.Type != d.Type {
		t.Errorf("parked copy %+v does not keep the message's id, type and body", msg.Publishing)
	}
}
