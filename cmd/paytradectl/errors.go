package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
)

// The headers internal/broker's consumer adds to a message it parks.
const (
	headerExceptionMessage = "x-exception-message"
	headerExceptionType    = "x-exception-type"
	headerOriginalExchange = "x-original-exchange"
	headerOriginalKey      = "x-original-routing-key"
	headerAttempts         = "x-attempts"
	headerFailedAt         = "x-failed-at"
	headerOriginalUserID   = "x-original-user-id"
)

// headerDeath is the header the broker adds to a message it dead-letters
// itself, beside x-first-death-* (and, on 4.x, x-last-death-*).
const headerDeath = "x-death"

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

func runErrors(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("errors: missing subcommand")
	}
	switch args[0] {
	case "list":
		return runErrorsList(ctx, args[1:], getenv, stdout, stderr)
	case "replay":
		return runErrorsReplay(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("errors: unknown subcommand %q", args[0])
}

// brokerSettings reads the broker connection and the error queue's name
// the way the services read them.
func brokerSettings(getenv func(string) string) (broker.Config, string, error) {
	r := config.NewReader(getenv)
	cfg := broker.ReadConfig(r, "paytradectl")
	queue := r.String("MQ_ERROR_QUEUE", "error.queue")
	return cfg, queue, r.Err()
}

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

// parkedQueue is an error queue opened on a connection of its own, with
// the channel that takes its messages.
type parkedQueue struct {
	name  string
	depth int // ready messages when it was opened
	conn  *amqp.Connection
	ch    *amqp.Channel
	stop  func() bool // stops closing conn when ctx ends
}

// openQueue connects to the broker and opens queue, which must exist:
// declaring it here could create it with other arguments than trade's.
func openQueue(ctx context.Context, cfg broker.Config, queue string) (*parkedQueue, error) {
	conn, err := broker.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	// Cancelling ctx (Ctrl-C) closes the connection, which ends any call
	// on it and gives every message taken back to the queue.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		stop()
		_ = conn.Close()
		return nil, fmt.Errorf("open channel: %w", err)
	}
	info, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		stop()
		_ = conn.Close()
		if amqpErr, ok := errors.AsType[*amqp.Error](err); ok && amqpErr.Code == amqp.NotFound {
			return nil, fmt.Errorf("queue %q does not exist on broker %s", queue, broker.Redact(cfg.URL))
		}
		return nil, fmt.Errorf("open queue %q: %w", queue, err)
	}
	return &parkedQueue{name: queue, depth: info.Messages, conn: conn, ch: ch, stop: stop}, nil
}

// fetch takes up to n messages from the head of the queue, unacked: they
// stay the broker's until acked, and go back if this process dies.
func (q *parkedQueue) fetch(n int) ([]amqp.Delivery, error) {
	msgs := make([]amqp.Delivery, 0, n)
	for len(msgs) < n {
		d, ok, err := q.ch.Get(q.name, false)
		if err != nil {
			return nil, fmt.Errorf("get message %d of queue %q: %w", len(msgs)+1, q.name, err)
		}
		if !ok {
			break // someone else took some since the queue was opened
		}
		msgs = append(msgs, d)
	}
	return msgs, nil
}

// release gives back every message taken and not acked, each to its
// place, by closing the channel, and waits until the queue holds them again
// (its depth at opening less the acked messages): a quorum queue applies
// the return after the close has been answered, and a listing or replay
// right after this one must find them. Its error says they are not all
// back within releaseWait: the broker dropped or dead-lettered some (a
// delivery limit on a queue declared by other means than trade), another
// client took them meanwhile, or the broker could not be asked.
func (q *parkedQueue) release(acked int) error {
	if err := q.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("give the messages back to queue %q: %w (the broker takes them back when the connection closes)", q.name, err)
	}
	ch, err := q.conn.Channel()
	if err != nil {
		return fmt.Errorf("check that queue %q holds its messages again: %w", q.name, err)
	}
	defer func() { _ = ch.Close() }()
	want := q.depth - acked
	deadline := time.Now().Add(releaseWait)
	for {
		info, err := ch.QueueDeclarePassive(q.name, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("check that queue %q holds its messages again: %w", q.name, err)
		}
		if info.Messages >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue %q holds %d messages after %v, %d fewer than it should: "+
				"the broker dropped or dead-lettered them (a delivery limit?), or another client took them", q.name, info.Messages, releaseWait, want-info.Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// releaseWait bounds how long release waits to see its messages back.
const releaseWait = 5 * time.Second

// close closes the connection; any message still unacked goes back to the queue.
func (q *parkedQueue) close() {
	q.stop()
	_ = q.conn.Close()
}

// parked is what the headers of a parked message say.
type parked struct {
	exchange, key          string
	hasExchange, hasKey    bool
	attempts               int64
	failedAt               string
	exceptionType, message string
}

func parkedHeaders(h amqp.Table) parked {
	var p parked
	p.exchange, p.hasExchange = headerString(h, headerOriginalExchange)
	p.key, p.hasKey = headerString(h, headerOriginalKey)
	p.attempts = headerInt(h, headerAttempts)
	p.failedAt, _ = headerString(h, headerFailedAt)
	p.exceptionType, _ = headerString(h, headerExceptionType)
	p.message, _ = headerString(h, headerExceptionMessage)
	if !p.hasExchange && !p.hasKey && p.exceptionType == "" {
		deadLettered(h, &p)
	}
	return p
}

// deadLettered fills p from the x-death header of a message the broker
// dead-lettered itself (rejected, or past the queue's delivery limit),
// which carries no header of the consumer's: its first death says where
// it came from and why.
func deadLettered(h amqp.Table, p *parked) {
	deaths, _ := h[headerDeath].([]any)
	if len(deaths) == 0 {
		return
	}
	// The newest death comes first.
	first, _ := deaths[len(deaths)-1].(amqp.Table)
	reason, _ := headerString(first, "reason")
	queue, _ := headerString(first, "queue")
	p.exceptionType = "dead-lettered"
	p.message = reason + " in queue " + queue
	p.exchange, p.hasExchange = headerString(first, "exchange")
	if keys, _ := first["routing-keys"].([]any); len(keys) > 0 {
		p.key, p.hasKey = keys[0].(string)
	}
	p.attempts = headerInt(h, "x-delivery-count")
	if t, ok := first["time"].(time.Time); ok {
		p.failedAt = t.UTC().Format(time.RFC3339)
	}
}

// replayable reports whether the message says where it failed.
func (p parked) replayable() bool {
	return p.hasExchange && p.hasKey
}

// missingOrigin names the origin headers p lacks.
func (p parked) missingOrigin() string {
	switch {
	case !p.hasExchange && !p.hasKey:
		return headerOriginalExchange + " and " + headerOriginalKey + " headers"
	case !p.hasExchange:
		return headerOriginalExchange + " header"
	default:
		return headerOriginalKey + " header"
	}
}

// headerString returns a header as text, whatever AMQP type it came as.
func headerString(h amqp.Table, key string) (string, bool) {
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

// headerInt returns a numeric header as an int64; AMQP tables carry
// integers of every width, and a hand-published message may carry a string.
func headerInt(h amqp.Table, key string) int64 {
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
		p := parkedHeaders(d.Headers)
		line := parkedJSON{
			Position: i + 1, MessageID: d.MessageId, Type: d.Type,
			Attempts: p.attempts, FailedAt: p.failedAt,
			ExceptionType: p.exceptionType, ExceptionMessage: p.message,
			ReplayCount:   headerInt(d.Headers, headerReplayCount),
			CorrelationID: d.CorrelationId, AppID: d.AppId, ContentType: d.ContentType,
		}
		if p.hasExchange {
			line.OriginalExchange = &p.exchange
		}
		if p.hasKey {
			line.OriginalRoutingKey = &p.key
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
		p := parkedHeaders(d.Headers)
		origin := "- (cannot be replayed)"
		if p.replayable() {
			origin = exchangeName(p.exchange) + " / " + p.key
		}
		attempts := "-"
		if p.attempts > 0 {
			attempts = strconv.FormatInt(p.attempts, 10)
		}
		exception := p.exceptionType
		if p.message != "" {
			exception += ": " + p.message
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1,
			orDash(oneLine(d.MessageId, 40)), orDash(oneLine(d.Type, 30)), oneLine(origin, 200),
			attempts, orDash(oneLine(p.failedAt, 30)), orDash(oneLine(exception, 80)), oneLine(string(d.Body), 60))
	}
	return tw.Flush()
}

// exchangeName shows the default exchange, whose name is empty, as AMQP tools do.
func exchangeName(name string) string {
	if name == "" {
		return "(AMQP default)"
	}
	return name
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine makes s fit one table cell: control characters (tabs and
// newlines would break the table) shown escaped, and at most n runes.
func oneLine(s string, n int) string {
	var b strings.Builder
	runes := 0
	for _, r := range s {
		if runes == n {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
		runes++
	}
	return b.String()
}

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
	origin   parked
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
		it := &replayItem{id: d.MessageId, position: i + 1, d: d, origin: parkedHeaders(d.Headers), result: resultWouldReplay}
		switch {
		case !it.origin.replayable():
			it.result, it.detail = resultLeft, "no "+it.origin.missingOrigin()+": where it failed is unknown"
		case d.MessageId == "":
			// Confirms and returns are matched to messages by id.
			it.result, it.detail = resultLeft, "no message_id: its replay could not be confirmed on its own"
		default:
			it.detail = "to " + exchangeName(it.origin.exchange) + " with key " + it.origin.key
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

// originalUser is the broker user that published the parked message d at
// first: its consumer kept it in x-original-user-id when it parked it (its
// own user_id is the parking service's).
func originalUser(d amqp.Delivery) string {
	if user, ok := d.Headers[headerOriginalUserID].(string); ok && user != "" {
		return user
	}
	return d.UserId
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
		it.result, it.detail = resultLeft, fmt.Sprintf("returned: no queue is bound to %s for key %s", exchangeName(it.origin.exchange), it.origin.key)
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
// persistent, without the headers parking added, and with a replay count.
func replayMessage(d amqp.Delivery, origin parked, now time.Time) broker.Message {
	headers := make(amqp.Table, len(d.Headers)+2)
	for k, v := range d.Headers {
		if strings.HasPrefix(k, "x-exception-") || strings.HasPrefix(k, "x-original-") || k == headerAttempts || k == headerFailedAt ||
			k == headerDeath || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		headers[k] = v
	}
	headers[headerReplayedAt] = now.UTC().Format(time.RFC3339)
	headers[headerReplayCount] = headerInt(d.Headers, headerReplayCount) + 1
	return broker.Message{
		Exchange:   origin.exchange,
		RoutingKey: origin.key,
		Publishing: amqp.Publishing{
			Headers:         headers,
			ContentType:     d.ContentType,
			ContentEncoding: d.ContentEncoding,
			DeliveryMode:    amqp.Persistent,
			Priority:        d.Priority,
			CorrelationId:   d.CorrelationId,
			ReplyTo:         d.ReplyTo,
			Expiration:      d.Expiration,
			MessageId:       d.MessageId,
			Timestamp:       d.Timestamp,
			Type:            d.Type,
			UserId:          originalUser(d),
			AppId:           d.AppId,
			Body:            d.Body,
		},
	}
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
