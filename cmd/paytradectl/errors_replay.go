package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

// The headers a replay adds, so that a message parked again says it was
// replayed already, and how often.
const (
	headerReplayedAt  = "x-replayed-at"
	headerReplayCount = "x-replay-count"
)

// replayBatch bounds the messages published before waiting for their
// confirms: enough to replay a big error queue quickly, few enough that a
// batch that fails (its channel closed by an unknown exchange, say)
// leaves little behind for the next run.
const replayBatch = 100

// idList is the -id flag: repeatable, and each value may list several ids
// separated by commas.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(v string) error {
	for id := range strings.SplitSeq(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			*l = append(*l, id)
		}
	}
	return nil
}

// replayResult is what became, or would become, of one message.
type replayResult int

const (
	resultLeft        replayResult = iota // still parked, for the reason given
	resultReplayed                        // replay confirmed and parked copy acked
	resultWouldReplay                     // -dry-run: it would have been replayed
	resultNotFound                        // no message with this id in the queue
)

func (r replayResult) String() string {
	switch r {
	case resultReplayed:
		return "replayed"
	case resultWouldReplay:
		return "would replay"
	case resultNotFound:
		return "not found"
	default:
		return "left"
	}
}

// replayItem is one selected message (or one id not found) and its fate.
type replayItem struct {
	id       string
	position int // in the queue, from 1; 0 if not found
	d        amqp.Delivery
	origin   broker.Parked
	result   replayResult
	detail   string
}

// runErrorsReplay publishes selected parked messages back to the exchange
// and routing key they failed from. A parked copy is acked only once the
// broker has confirmed its replay as routed; anything else leaves it
// parked, in its place (see runErrorsList). The replay goes to the
// exchange, so every queue bound there for its key gets a copy again:
// consumers must deduplicate by message id, as trade's inbox does.
func runErrorsReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, defaultQueue, err := brokerSettings(getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("errors replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	queue := fs.String("queue", defaultQueue, "the error queue (MQ_ERROR_QUEUE)")
	var ids idList
	fs.Var(&ids, "id", "replay the message with this `MESSAGE_ID` (repeat -id, or separate ids with commas)")
	all := fs.Bool("all", false, "replay every message in the queue")
	dryRun := fs.Bool("dry-run", false, "say what would be replayed, and change nothing")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	switch {
	case *all && len(ids) > 0:
		return errors.New("errors replay: -id and -all exclude each other")
	case !*all && len(ids) == 0:
		return errors.New("errors replay: need -id MESSAGE_ID or -all")
	}

	q, err := openQueue(ctx, cfg, *queue)
	if err != nil {
		return fmt.Errorf("errors replay: %w", err)
	}
	defer q.close()
	// The whole queue, as it stood: a message may be parked more than
	// once (a redelivery parked again), and every copy is replayed. What
	// is not selected stays unacked meanwhile, so no get returns it twice.
	msgs, err := q.fetch(q.depth)
	if err != nil {
		return fmt.Errorf("errors replay: %w", err)
	}
	items := selectForReplay(msgs, ids, *all)

	if !*dryRun {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := replay(ctx, cfg, log, items); err != nil {
			// Nothing was acked: every message goes back.
			return errors.Join(fmt.Errorf("errors replay: %w", err), q.release(0))
		}
	}
	// What was not acked — not selected, or not replayed — goes back to
	// its place, as with errors list. The report is printed whatever
	// happens here: what was replayed has been replayed.
	acked := 0
	for _, it := range items {
		if it.result == resultReplayed {
			acked++
		}
	}
	var releaseErr error
	if err := q.release(acked); err != nil {
		releaseErr = fmt.Errorf("errors replay: %w; the messages reported left may not all be in the queue", err)
	}
	return errors.Join(writeReplayReport(stdout, *queue, items, *all), releaseErr)
}

// selectForReplay picks the messages to replay (and those that cannot
// be, with why), and names the ids asked for that the queue does not hold.
func selectForReplay(msgs []amqp.Delivery, ids idList, all bool) []*replayItem {
	wanted := make(map[string]bool, len(ids))
	for _, id := range ids {
		wanted[id] = true
	}
	found := make(map[string]bool, len(ids))
	var items []*replayItem
	for i, d := range msgs {
		if !all && !wanted[d.MessageId] {
			continue
		}
		found[d.MessageId] = true
		it := &replayItem{id: d.MessageId, position: i + 1, d: d, origin: broker.ParkedHeaders(d.Headers), result: resultWouldReplay}
		switch {
		case !it.origin.Replayable():
			it.result, it.detail = resultLeft, "no "+it.origin.MissingOrigin()+": where it failed is unknown"
		case d.MessageId == "":
			// Confirms and returns are matched to messages by id.
			it.result, it.detail = resultLeft, "no message_id: its replay could not be confirmed on its own"
		default:
			it.detail = "to " + exchangeName(it.origin.Exchange) + " with key " + it.origin.RoutingKey
		}
		items = append(items, it)
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !found[id] && !seen[id] {
			seen[id] = true
			items = append(items, &replayItem{id: id, result: resultNotFound, detail: "no message with this id in the queue"})
		}
	}
	return items
}

// replay publishes every item still to be replayed, in batches, and acks
// its parked copy once the broker confirms the replay routed. Its error
// means nothing could be published at all.
func replay(ctx context.Context, cfg broker.Config, log *slog.Logger, items []*replayItem) error {
	var todo []*replayItem
	for _, it := range items {
		if it.result == resultWouldReplay {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cfg.Logger = log
	sup := broker.NewSupervisor(cfg, nil)
	supCtx, stopSup := context.WithCancel(ctx)
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		_ = sup.Run(supCtx)
	}()
	defer func() {
		stopSup()
		<-supDone
	}()
	// Publishing has a connection of its own, as in the services: a
	// broker short of memory blocks publishing connections, and would
	// then hold up the gets and acks on the other one too.
	wait, cancel := context.WithTimeout(ctx, 2*cfg.ConnectTimeout)
	defer cancel()
	if _, err := sup.Connection(wait); err != nil {
		return fmt.Errorf("connect publisher to broker %s: %w", broker.Redact(cfg.URL), err)
	}
	// A replayed event goes out as the user that first published it, so
	// that its consumer takes it again, and a forgery is refused again.
	pub := broker.NewPublisher(sup, broker.PublisherConfig{Logger: log, Impersonate: true})
	defer func() { _ = pub.Close() }()

	now := time.Now()
	for len(todo) > 0 {
		batch := nextBatch(todo)
		todo = todo[len(batch):]
		msgs := make([]broker.Message, len(batch))
		for i, it := range batch {
			msgs[i] = replayMessage(it.d, it.origin, now)
		}
		outcomes, err := pub.PublishBatch(ctx, msgs)
		for i, it := range batch {
			outcome := broker.Unconfirmed
			if i < len(outcomes) {
				outcome = outcomes[i]
			}
			settleReplay(it, outcome, err)
		}
	}
	return nil
}

// nextBatch returns the head of todo to publish together: at most
// replayBatch items with distinct message ids, since the publisher tells
// the returns of a batch apart by id.
func nextBatch(todo []*replayItem) []*replayItem {
	ids := make(map[string]bool, min(len(todo), replayBatch))
	n := 0
	for n < len(todo) && n < replayBatch && !ids[todo[n].id] {
		ids[todo[n].id] = true
		n++
	}
	return todo[:n]
}

// settleReplay acks the parked copy of a confirmed replay; any other
// outcome leaves it parked, with the reason.
func settleReplay(it *replayItem, outcome broker.Outcome, publishErr error) {
	switch outcome {
	case broker.Acked:
		if err := it.d.Ack(false); err != nil {
			// The broker takes the parked copy back when the channel
			// goes: it is replayed and still parked. A second replay
			// of it is a duplicate, which consumers must absorb anyway.
			it.result, it.detail = resultLeft, fmt.Sprintf("replayed %s, but its parked copy could not be removed: %v", it.detail, err)
			return
		}
		it.result = resultReplayed
	case broker.Returned:
		it.result, it.detail = resultLeft, fmt.Sprintf("returned: no queue is bound to %s for key %s", exchangeName(it.origin.Exchange), it.origin.RoutingKey)
	case broker.Nacked:
		it.result, it.detail = resultLeft, "nacked: the broker refused the replay"
	default:
		it.result, it.detail = resultLeft, "unconfirmed: the broker did not confirm the replay"
		if publishErr != nil {
			it.detail += ": " + publishErr.Error()
		}
	}
}

// replayMessage is d as it is published again: its body and properties,
// persistent, without the headers parking added, sent as the user that
// first published it, and with a replay count.
func replayMessage(d amqp.Delivery, origin broker.Parked, now time.Time) broker.Message {
	p := broker.Republished(d)
	p.Headers = make(amqp.Table, len(d.Headers)+2)
	for k, v := range d.Headers {
		if !broker.IsParkingHeader(k) {
			p.Headers[k] = v
		}
	}
	p.Headers[headerReplayedAt] = now.UTC().Format(time.RFC3339)
	p.Headers[headerReplayCount] = broker.HeaderInt(d.Headers, headerReplayCount) + 1
	p.DeliveryMode = amqp.Persistent
	p.UserId = broker.OriginalUser(d)
	return broker.Message{Exchange: origin.Exchange, RoutingKey: origin.RoutingKey, Publishing: p}
}

// writeReplayReport prints one line per message and returns an error
// naming every message asked for and not replayed.
func writeReplayReport(w io.Writer, queue string, items []*replayItem, all bool) error {
	if len(items) == 0 && all {
		_, err := fmt.Fprintf(w, "queue %s is empty: nothing to replay\n", queue)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tMESSAGE ID\tPOS\tDETAIL")
	counts := map[replayResult]int{}
	var failed []string
	for _, it := range items {
		counts[it.result]++
		pos := "-"
		if it.position > 0 {
			pos = strconv.Itoa(it.position)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.result, orDash(oneLine(it.id, 40)), pos, oneLine(it.detail, 200))
		if it.result == resultLeft || it.result == resultNotFound {
			name := it.id
			if name == "" {
				name = "message at position " + strconv.Itoa(it.position)
			}
			failed = append(failed, fmt.Sprintf("%s (%s)", name, it.result))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var summary []string
	for _, r := range []replayResult{resultReplayed, resultWouldReplay, resultLeft, resultNotFound} {
		if counts[r] > 0 {
			summary = append(summary, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	fmt.Fprintf(w, "queue %s: %s\n", queue, strings.Join(summary, ", "))
	if len(failed) > 0 {
		return fmt.Errorf("errors replay: %d not replayed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}
