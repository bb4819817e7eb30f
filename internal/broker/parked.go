package broker

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The headers the consumer adds to a message it parks: why it failed, where
// it came from and who first sent it. paytradectl reads them back.
const (
	HeaderExceptionMessage   = "x-exception-message"
	HeaderExceptionType      = "x-exception-type"
	HeaderOriginalExchange   = "x-original-exchange"
	HeaderOriginalRoutingKey = "x-original-routing-key"
	HeaderAttempts           = "x-attempts"
	HeaderFailedAt           = "x-failed-at"
	HeaderOriginalUserID     = "x-original-user-id"
)

// HeaderDeath is the header the broker adds to a message it dead-letters
// itself, beside x-first-death-* (and, on 4.x, x-last-death-*).
const HeaderDeath = "x-death"

// parkedCopy is d as published to the error exchange: body and properties
// kept, and headers that say why and where it came from. Its user_id
// becomes the parking service's own (the broker accepts no other), so the
// user that published d is kept in x-original-user-id.
func parkedCopy(d amqp.Delivery, exchange, key, kind string, attempts int, cause error, failedAt time.Time) Message {
	p := Republished(d)
	p.Headers = make(amqp.Table, len(d.Headers)+7)
	maps.Copy(p.Headers, d.Headers)
	p.Headers[HeaderExceptionMessage] = truncate(cause.Error(), maxExceptionMessage)
	p.Headers[HeaderExceptionType] = kind
	p.Headers[HeaderOriginalExchange] = d.Exchange
	p.Headers[HeaderOriginalRoutingKey] = d.RoutingKey
	p.Headers[HeaderAttempts] = int32(attempts)
	p.Headers[HeaderFailedAt] = failedAt.UTC().Format(time.RFC3339)
	if d.UserId != "" {
		p.Headers[HeaderOriginalUserID] = d.UserId
	}
	if p.MessageId == "" {
		// PublishBatch matches returns to messages by id.
		p.MessageId = uuid.NewString()
	}
	return Message{Exchange: exchange, RoutingKey: key, Publishing: p}
}

// Republished is d's body and properties as a publishing, headers shared
// with d: what parking and replaying send on. Its user_id is left empty,
// since the broker accepts only the publishing connection's own.
func Republished(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// Parked is what the headers of a message in the error queue say: those
// the consumer added when it parked it, or, for a message the broker
// dead-lettered itself, its x-death header.
type Parked struct {
	Exchange, RoutingKey            string
	HasExchange, HasRoutingKey      bool // the origin is known, even when empty (the default exchange)
	Attempts                        int64
	FailedAt                        string
	ExceptionType, ExceptionMessage string
}

// ParkedHeaders reads h, the headers of a parked message.
func ParkedHeaders(h amqp.Table) Parked {
	var p Parked
	p.Exchange, p.HasExchange = HeaderString(h, HeaderOriginalExchange)
	p.RoutingKey, p.HasRoutingKey = HeaderString(h, HeaderOriginalRoutingKey)
	p.Attempts = HeaderInt(h, HeaderAttempts)
	p.FailedAt, _ = HeaderString(h, HeaderFailedAt)
	p.ExceptionType, _ = HeaderString(h, HeaderExceptionType)
	p.ExceptionMessage, _ = HeaderString(h, HeaderExceptionMessage)
	if !p.HasExchange && !p.HasRoutingKey && p.ExceptionType == "" {
		p.deadLettered(h)
	}
	return p
}

// deadLettered fills p from the x-death header of a message the broker
// dead-lettered itself (rejected, or past the queue's delivery limit),
// which carries no header of the consumer's: its first death says where
// it came from and why.
func (p *Parked) deadLettered(h amqp.Table) {
	deaths, _ := h[HeaderDeath].([]any)
	if len(deaths) == 0 {
		return
	}
	// The newest death comes first.
	first, _ := deaths[len(deaths)-1].(amqp.Table)
	reason, _ := HeaderString(first, "reason")
	queue, _ := HeaderString(first, "queue")
	p.ExceptionType = "dead-lettered"
	p.ExceptionMessage = reason + " in queue " + queue
	p.Exchange, p.HasExchange = HeaderString(first, "exchange")
	if keys, _ := first["routing-keys"].([]any); len(keys) > 0 {
		p.RoutingKey, p.HasRoutingKey = keys[0].(string)
	}
	p.Attempts = HeaderInt(h, "x-delivery-count")
	if t, ok := first["time"].(time.Time); ok {
		p.FailedAt = t.UTC().Format(time.RFC3339)
	}
}

// Replayable reports whether the message says where it failed.
func (p Parked) Replayable() bool {
	return p.HasExchange && p.HasRoutingKey
}

// MissingOrigin names the origin headers p lacks.
func (p Parked) MissingOrigin() string {
	switch {
	case !p.HasExchange && !p.HasRoutingKey:
		return HeaderOriginalExchange + " and " + HeaderOriginalRoutingKey + " headers"
	case !p.HasExchange:
		return HeaderOriginalExchange + " header"
	default:
		return HeaderOriginalRoutingKey + " header"
	}
}

// IsParkingHeader reports whether header k was added by parking — the
// consumer's or the broker's own dead-lettering — and so is no part of the
// message as first published.
func IsParkingHeader(k string) bool {
	switch k {
	case HeaderExceptionMessage, HeaderExceptionType, HeaderOriginalExchange, HeaderOriginalRoutingKey,
		HeaderAttempts, HeaderFailedAt, HeaderOriginalUserID, HeaderDeath:
		return true
	}
	return strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}

// OriginalUser is the broker user that first published the parked message
// d: the consumer kept it in x-original-user-id when it parked d, whose own
// user_id is the parking service's.
func OriginalUser(d amqp.Delivery) string {
	if user, ok := d.Headers[HeaderOriginalUserID].(string); ok && user != "" {
		return user
	}
	return d.UserId
}

// HeaderString returns a header as text, whatever AMQP type it came as.
func HeaderString(h amqp.Table, key string) (string, bool) {
	v, ok := h[key]
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, ok
	case []byte:
		return string(v), ok
	default:
		return fmt.Sprint(v), ok
	}
}

// HeaderInt returns a numeric header as an int64; AMQP tables carry
// integers of every width, and a hand-published message may carry a string.
func HeaderInt(h amqp.Table, key string) int64 {
	switch v := h[key].(type) {
	case int8:
		return int64(v)
	case uint8:
		return int64(v)
	case int16:
		return int64(v)
	case uint16:
		return int64(v)
	case int32:
		return int64(v)
	case uint32:
		return int64(v)
	case int64:
		return v
	case float32:
		return int64(v)
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}
