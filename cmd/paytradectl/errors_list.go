package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

// runErrorsList shows the parked messages without removing them. AMQP
// 0-9-1 cannot peek, so it takes them with basic.get, unacked, and gives
// them back by closing its channel: a classic queue puts each back in its
// place, and a quorum queue puts them, in order, ahead of the messages it
// has not handed out — where a nack with requeue would send them to its
// back when it has no delivery-limit. Listing the whole queue (a -limit
// above its depth, as usual) therefore keeps its order; a partial listing
// of a quorum queue may move the messages listed behind those that were
// given back before. Every message listed is marked redelivered and, in a
// quorum queue, counted as delivered once more (x-delivery-count): trade
// declares the error queue with a delivery limit no listing reaches
// (broker.QueueArguments), but on a queue declared otherwise (RabbitMQ 4
// sets 20 by default) listing may cost messages — and then says so.
func runErrorsList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, defaultQueue, err := brokerSettings(getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("errors list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	queue := fs.String("queue", defaultQueue, "the error queue (MQ_ERROR_QUEUE)")
	limit := fs.Int("limit", 100, "show at most this many messages, from the head of the queue (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per message and line, with the whole body")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("errors list: -limit %d: want 0 (all) or more", *limit)
	}

	q, err := openQueue(ctx, cfg, *queue)
	if err != nil {
		return fmt.Errorf("errors list: %w", err)
	}
	defer q.close()
	want := q.depth
	if *limit > 0 {
		want = min(want, *limit)
	}
	msgs, err := q.fetch(want)
	if err != nil {
		return fmt.Errorf("errors list: %w", err)
	}
	// Back before printing: a slow or broken stdout must not keep them out.
	var releaseErr error
	if err := q.release(0); err != nil {
		releaseErr = fmt.Errorf("errors list: %w", err)
	}
	if *asJSON {
		return errors.Join(writeParkedJSON(stdout, msgs), releaseErr)
	}
	return errors.Join(writeParkedTable(stdout, *queue, q.depth, msgs, releaseErr == nil), releaseErr)
}

// parkedJSON is one line of errors list -json.
type parkedJSON struct {
	Position           int     `json:"position"`
	MessageID          string  `json:"messageId"`
	Type               string  `json:"type,omitempty"`
	OriginalExchange   *string `json:"originalExchange"` // null: the message cannot be replayed
	OriginalRoutingKey *string `json:"originalRoutingKey"`
	Attempts           int64   `json:"attempts,omitempty"`
	FailedAt           string  `json:"failedAt,omitempty"`
	ExceptionType      string  `json:"exceptionType,omitempty"`
	ExceptionMessage   string  `json:"exceptionMessage,omitempty"`
	ReplayCount        int64   `json:"replayCount,omitempty"`
	CorrelationID      string  `json:"correlationId,omitempty"`
	AppID              string  `json:"appId,omitempty"`
	ContentType        string  `json:"contentType,omitempty"`
	Body               string  `json:"body"`
	// BodyBase64 replaces Body when the body is not UTF-8 text.
	BodyBase64 []byte `json:"bodyBase64,omitempty"`
}

func writeParkedJSON(w io.Writer, msgs []amqp.Delivery) error {
	enc := json.NewEncoder(w)
	for i, d := range msgs {
		p := broker.ParkedHeaders(d.Headers)
		line := parkedJSON{
			Position: i + 1, MessageID: d.MessageId, Type: d.Type,
			Attempts: p.Attempts, FailedAt: p.FailedAt,
			ExceptionType: p.ExceptionType, ExceptionMessage: p.ExceptionMessage,
			ReplayCount:   broker.HeaderInt(d.Headers, headerReplayCount),
			CorrelationID: d.CorrelationId, AppID: d.AppId, ContentType: d.ContentType,
		}
		if p.HasExchange {
			line.OriginalExchange = &p.Exchange
		}
		if p.HasRoutingKey {
			line.OriginalRoutingKey = &p.RoutingKey
		}
		if utf8.Valid(d.Body) {
			line.Body = string(d.Body)
		} else {
			line.BodyBase64 = d.Body
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// writeParkedTable prints msgs; back says whether the queue was seen to
// hold them all again, which is all that allows saying so.
func writeParkedTable(w io.Writer, queue string, depth int, msgs []amqp.Delivery, back bool) error {
	if len(msgs) == 0 {
		_, err := fmt.Fprintf(w, "queue %s is empty\n", queue)
		return err
	}
	left := "all left in the queue"
	if !back {
		left = "NOT all of them back in the queue: see the error"
	}
	fmt.Fprintf(w, "queue %s: %d messages, showing the first %d (%s)\n", queue, depth, len(msgs), left)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POS\tMESSAGE ID\tTYPE\tORIGINAL EXCHANGE / KEY\tATTEMPTS\tFAILED AT\tEXCEPTION\tBODY")
	for i, d := range msgs {
		p := broker.ParkedHeaders(d.Headers)
		origin := "- (cannot be replayed)"
		if p.Replayable() {
			origin = exchangeName(p.Exchange) + " / " + p.RoutingKey
		}
		attempts := "-"
		if p.Attempts > 0 {
			attempts = strconv.FormatInt(p.Attempts, 10)
		}
		exception := p.ExceptionType
		if p.ExceptionMessage != "" {
			exception += ": " + p.ExceptionMessage
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1,
			orDash(oneLine(d.MessageId, 40)), orDash(oneLine(d.Type, 30)), oneLine(origin, 200),
			attempts, orDash(oneLine(p.FailedAt, 30)), orDash(oneLine(exception, 80)), oneLine(string(d.Body), 60))
	}
	return tw.Flush()
}
