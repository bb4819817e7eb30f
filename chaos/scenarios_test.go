package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/testenv"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
)

// run is one scenario's run: its system, population and settings.
type run struct {
	*system
	cluster  *testenv.RabbitCluster  // the broker, for scenarios that run on a cluster
	patroni  *testenv.PatroniCluster // the database cluster, for scenarios that fail one over
	node     *testenv.RabbitNode     // the broker, for scenarios that run on a private node
	pop      population
	n        int
	spread   time.Duration // the load is paced over this long
	settle   time.Duration // how long the system may take to converge
	poison   map[string]bool
	notes    []string      // what the fault did, for the table's verdict
	deadline time.Duration // a scenario's own bound on converging, if any
	began    time.Time     // when the scenario began, which the log's times count from
}

// scenario injects one fault into a run; it starts the processes it needs,
// drives the load with goLoad and returns what the buyers saw once the
// fault has healed.
type scenario struct {
	name string
	// gate, when set, is an environment switch the scenario needs.
	gate string
	// cluster runs the scenario on a three-node cluster of its own
	// (testenv.StartRabbitCluster) rather than the test broker.
	cluster bool
	// privateBroker runs the scenario on a RabbitMQ node of its own
	// (testenv.StartRabbitNode), for faults that must not touch the broker
	// other tests share.
	privateBroker bool
	// patroni, "pay" or "trade", puts that service's database on a Patroni
	// cluster of its own (testenv.StartPatroniCluster): synchronous
	// replication, asynchronous with the seed-style wiring.
	patroni string
	// fullOnly keeps the scenario out of the short run make test does.
	fullOnly bool
	run      func(t *testing.T, r *run) loadResult
}

// standard starts one pay and one trade and the audit.
func (r *run) standard(t *testing.T, tradeEnv ...string) {
	t.Helper()
	r.addPay()
	r.addTrade(tradeEnv...)
	r.observe(t)
	r.pop = r.populate(t, r.n)
}

// goLoad drives the payments in the background over spread.
func (r *run) goLoad(spread time.Duration) <-chan loadResult {
	done := make(chan loadResult, 1)
	go func() { done <- pay(context.Background(), r.pop, r.payURLs, r.tradeURLs, spread, 32, r.began) }()
	return done
}

// during runs fault every period until the load is done, and returns the
// load's result.
func during(load <-chan loadResult, period time.Duration, fault func()) loadResult {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case res := <-load:
			return res
		case <-tick.C:
			fault()
		}
	}
}

// restartOnDeath waits for the load and for the buyers' refunds, which
// outlive it, restarting in each time its process dies, with the next of
// envs (the last one for good); it returns the load's result, its refunds
// awaited, and how many times the process died. The log says when each
// death was seen and when the process listened again.
func (r *run) restartOnDeath(t *testing.T, in *instance, load <-chan loadResult, envs ...[]string) (loadResult, int) {
	t.Helper()
	deaths := 0
	restart := func() {
		if in.proc.Exited() {
			deaths++
			seen := time.Since(r.began)
			in.start(t, envs[min(deaths, len(envs))-1]...)
			t.Logf("%s died, seen at %.2fs; listening again at %.2fs", in.name, seen.Seconds(), time.Since(r.began).Seconds())
		}
	}
	var res loadResult
	for loaded := false; !loaded; {
		select {
		case res = <-load:
			loaded = true
		case <-time.After(20 * time.Millisecond):
		}
		restart()
	}
	// A crash point a refund hits after the payments are done must find
	// the process restarted too.
	refunded := make(chan refundTally, 1)
	go func() { refunded <- res.awaitRefunds() }()
	for {
		select {
		case tally := <-refunded:
			restart()
			res.awaitRefunds = func() refundTally { return tally }
			return res, deaths
		case <-time.After(20 * time.Millisecond):
			restart()
		}
	}
}

// failover runs the standard system under a load of at least 20 s and
// injects fault, one change of the database cluster, a third of the way
// in; the careful buyers retry through it. fault returns what it did.
func (r *run) failover(t *testing.T, fault func() string) loadResult {
	t.Helper()
	r.standard(t)
	spread := max(r.spread, 20*time.Second)
	load := r.goLoad(spread)
	time.Sleep(spread / 3)
	start := time.Now()
	note := fault()
	leader := r.patroni.Leader(t)
	r.notes = append(r.notes, fmt.Sprintf("%s; leader %s %.1f s later", note, leader.Name, time.Since(start).Seconds()))
	return <-load
}

// killPrimary SIGKILLs the leader's PostgreSQL. On asynchronous
// replication (UNSAFE=1) the standbys are first left 2 s behind, as an
// asynchronous standby may be under load, and the leader's node then dies
// whole, its Patroni first: a standby without those 2 s of acknowledged
// commits is promoted. What asynchronous replication costs.
func (r *run) killPrimary(t *testing.T) string {
	t.Helper()
	leader := r.patroni.Leader(t)
	if !r.wiring.asyncReplication {
		leader.KillPostgres(t)
		return "postmaster SIGKILLed"
	}
	var frozen []*testenv.FrozenReplication
	for _, n := range r.patroni.Nodes {
		if n != leader {
			frozen = append(frozen, n.FreezeReplication(t))
		}
	}
	time.Sleep(2 * time.Second)
	leader.Kill(t)
	for _, f := range frozen {
		f.Drop()
	}
	return "standbys 2 s behind, then the leader's node SIGKILLed"
}

// waitOutboxEmpty waits until pay has published every event it committed.
func (r *run) waitOutboxEmpty(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, "pay's outbox to empty", func() bool {
		var n int
		err := r.payPool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_events`).Scan(&n)
		return err == nil && n == 0
	})
}

// scenarios are the faults, in the order the table lists them.
var scenarios = []scenario{
	{name: "baseline, no faults", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		return <-r.goLoad(r.spread)
	}},
	{name: "AMQP connections cut repeatedly", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		cuts := 0
		res := during(r.goLoad(r.spread), 400*time.Millisecond, func() {
			p := r.pays[0].amqp
			if cuts%2 == 1 {
				p = r.trades[0].amqp
			}
			cut(t, p, 100*time.Millisecond)
			cuts++
		})
		r.notes = append(r.notes, fmt.Sprintf("%d cuts", cuts))
		return res
	}},
	{name: "broker blackholed 10 s", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(max(r.spread, 14*time.Second))
		time.Sleep(2 * time.Second)
		restorePay, restoreTrade := blackhole(t, r.pays[0].amqp), blackhole(t, r.trades[0].amqp)
		time.Sleep(10 * time.Second)
		restorePay()
		restoreTrade()
		return <-load
	}},
	{name: "RabbitMQ restarted with a backlog", gate: "PAYTRADE_CHAOS_BROKER_RESTART", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		trade := r.trades[0]
		trade.proc.Stop(t, 20*time.Second)
		res := <-r.goLoad(r.spread)
		r.waitOutboxEmpty(t)
		before := r.depth(r.PayQueue)
		restartBroker(t)
		after := -1
		testenv.WaitFor(t, 30*time.Second, "the queue to be back", func() bool {
			after = r.depth(r.PayQueue)
			return after >= 0
		})
		r.notes = append(r.notes, fmt.Sprintf("backlog %d → %d across the restart", before, after))
		trade.start(t)
		return res
	}},
	{name: "pay SIGKILLed at crash points", run: func(t *testing.T, r *run) loadResult {
		p := r.addPay("PAYTRADE_CRASH_POINTS=" + crashpoint.PayAfterCommit + fmt.Sprintf("@%d", max(r.n/4, 2)))
		r.addTrade()
		r.observe(t)
		r.pop = r.populate(t, r.n)
		res, deaths := r.restartOnDeath(t, p, r.goLoad(r.spread),
			[]string{"PAYTRADE_CRASH_POINTS=" + crashpoint.RelayAfterConfirm + "@3"},
			[]string{"PAYTRADE_CRASH_POINTS=" + crashpoint.PayAfterRefundCommit + "@2"}, []string{"PAYTRADE_CRASH_POINTS="})
		r.notes = append(r.notes, fmt.Sprintf("%d kills", deaths))
		return res
	}},
	{name: "trade SIGKILLed after commit, before ack", run: func(t *testing.T, r *run) loadResult {
		crash := "PAYTRADE_CRASH_POINTS=" + crashpoint.TradeAfterCommit + fmt.Sprintf("@%d", max(r.n/4, 2))
		r.standard(t, crash)
		res, deaths := r.restartOnDeath(t, r.trades[0], r.goLoad(r.spread), []string{crash},
			[]string{"PAYTRADE_CRASH_POINTS=" + crashpoint.TradeAfterRefundCommit + "@2"}, []string{"PAYTRADE_CRASH_POINTS="})
		r.notes = append(r.notes, fmt.Sprintf("%d kills", deaths))
		return res
	}},
	{name: "trade's PostgreSQL link cut", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(r.spread)
		time.Sleep(r.spread / 3)
		cut(t, r.trades[0].database, 3*time.Second)
		return <-load
	}},
	{name: "trade's database read-only mid-load", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(r.spread)
		time.Sleep(r.spread / 3)
		// What a failover to a standby looks like to trade: the database
		// answers, and refuses every write.
		testenv.SetDatabase(t, r.TradeDB, "default_transaction_read_only", "on")
		time.Sleep(3 * time.Second)
		testenv.SetDatabase(t, r.TradeDB, "default_transaction_read_only", "")
		r.notes = append(r.notes, "read-only 3 s")
		return <-load
	}},
	{name: "broker memory alarm mid-load (private node)", privateBroker: true, run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(max(r.spread, 10*time.Second))
		time.Sleep(max(r.spread, 10*time.Second) / 3)
		r.node.Ctl(t, "set_vm_memory_high_watermark", "0")
		time.Sleep(5 * time.Second)
		r.node.Ctl(t, "set_vm_memory_high_watermark", "0.4")
		r.notes = append(r.notes, "publishing blocked 5 s")
		return <-load
	}},
	{name: "order timeouts race payments", run: func(t *testing.T, r *run) loadResult {
		// Every order times out halfway through the load: the payments
		// around that moment race the fallback closing their pay orders.
		timeout := r.spread / 2
		r.standard(t, "TRADE_PAY_CHECK_SPEC=@every 1s", "TRADE_PAY_CHECK_GRACE=200ms", fmt.Sprintf("TRADE_ORDER_TIMEOUT=%v", timeout))
		r.notes = append(r.notes, fmt.Sprintf("orders time out after %v", timeout))
		return <-r.goLoad(r.spread)
	}},
	{name: "user cancels race payments", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(r.spread)
		cancelled := r.cancelRacing(t, r.spread)
		r.notes = append(r.notes, fmt.Sprintf("%d cancelled of %d tried", cancelled, len(r.pop.payments)/4))
		return <-load
	}},
	{name: "duplicate storm (5× same id, 2× new ids)", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		watched := testenv.Watch(t, r.AMQPURL, r.PayExchange, "pay.success")
		stormed := make(chan int, 1)
		stop := make(chan struct{})
		go func() { stormed <- r.storm(t, watched, stop) }()
		res := <-r.goLoad(r.spread)
		r.waitOutboxEmpty(t)
		time.Sleep(500 * time.Millisecond) // the last copies reach the watch queue
		close(stop)
		r.notes = append(r.notes, fmt.Sprintf("%d copies", <-stormed))
		return res
	}},
	{name: "poison messages mixed in", run: func(t *testing.T, r *run) loadResult {
		r.standard(t)
		load := r.goLoad(r.spread)
		r.poison = r.publishPoison(t, max(r.n/20, 10), r.spread)
		return <-load
	}},
	{name: "messages lost before trade sees them", run: func(t *testing.T, r *run) loadResult {
		const period = 3 * time.Second
		r.standard(t, "TRADE_PAY_CHECK_SPEC=@every 3s", "TRADE_PAY_CHECK_GRACE=1s")
		trade := r.trades[0]
		trade.proc.Stop(t, 20*time.Second)
		res := <-r.goLoad(r.spread)
		r.waitOutboxEmpty(t)
		purged := r.purge(t)
		time.Sleep(time.Second) // past the grace, so one tick sees them all
		trade.start(t)
		r.notes = append(r.notes, fmt.Sprintf("%d purged, fallback every %v", purged, period))
		r.deadline = period + 2*time.Second
		return res
	}},
	{name: "cluster: the node pay and trade use SIGKILLed", cluster: true, run: func(t *testing.T, r *run) loadResult {
		r.declareVia(t, r.cluster.Nodes[2])
		r.standard(t)
		// The first node of every AMQP_URL: where pay and trade connect.
		used := r.cluster.Nodes[0]
		r.notes = append(r.notes, "queue leader on "+r.nodeName(r.cluster.Leader(t, r.PayQueue)))
		return r.killDuringLoad(t, used)
	}},
	{name: "cluster: the quorum queues' leader SIGKILLed", cluster: true, run: func(t *testing.T, r *run) loadResult {
		r.declareVia(t, r.cluster.Nodes[1])
		r.standard(t)
		leader := r.cluster.Leader(t, r.PayQueue)
		r.notes = append(r.notes, "pay and trade on node 1")
		res := r.killDuringLoad(t, leader)
		r.notes = append(r.notes, "new leader "+r.nodeName(r.cluster.Leader(t, r.PayQueue)))
		return res
	}},
	{name: "two pay + two trade, one of each killed", run: func(t *testing.T, r *run) loadResult {
		r.addPay()
		r.addPay()
		r.addTrade()
		r.addTrade()
		r.observe(t)
		r.pop = r.populate(t, r.n)
		load := r.goLoad(r.spread)
		time.Sleep(r.spread * 2 / 5)
		r.pays[0].proc.Kill()
		r.trades[0].proc.Kill()
		return <-load
	}},
	{name: "pay's primary SIGKILLed mid-load (Patroni)", patroni: "pay", run: func(t *testing.T, r *run) loadResult {
		return r.failover(t, func() string { return r.killPrimary(t) })
	}},
	{name: "trade's primary SIGKILLed mid-load (Patroni)", patroni: "trade", run: func(t *testing.T, r *run) loadResult {
		return r.failover(t, func() string { return r.killPrimary(t) })
	}},
	{name: "pay's primary switched over (patronictl)", patroni: "pay", fullOnly: true, run: func(t *testing.T, r *run) loadResult {
		return r.failover(t, func() string {
			r.patroni.Switchover(t)
			return "patronictl switchover"
		})
	}},
	{name: "pay's synchronous standby killed (Patroni)", patroni: "pay", fullOnly: true, run: func(t *testing.T, r *run) loadResult {
		return r.failover(t, func() string {
			if r.wiring.asyncReplication {
				r.patroni.Replica(t).Kill(t)
			} else {
				r.patroni.SyncStandby(t).Kill(t)
			}
			return "node SIGKILLed"
		})
	}},
	{name: "pay's etcd stopped 15 s, past the TTL (Patroni)", patroni: "pay", fullOnly: true, run: func(t *testing.T, r *run) loadResult {
		return r.failover(t, func() string {
			r.patroni.StopEtcd(t)
			time.Sleep(15 * time.Second)
			r.patroni.StartEtcd(t)
			return "etcd down 15 s"
		})
	}},
}

// declareVia declares pay's and trade's topologies through node before
// they start, so that their quorum queues are led from there: RabbitMQ 3.x
// places a new queue's leader on the node that declares it (4.x may place
// it elsewhere, which the table's notes then say).
func (r *run) declareVia(t *testing.T, node *testenv.RabbitNode) {
	t.Helper()
	trade := tradeamqp.Topology{
		Exchange: r.PayExchange, PaySuccessKey: "pay.success", Queue: r.PayQueue, QueueType: broker.QueueQuorum,
		ErrorExchange: r.ErrorExchange, ErrorKey: "error", ErrorQueue: r.ErrorQueue,
		TradeExchange: r.TradeExchange, RefundRequestedKey: "refund.requested", RefundSuccessKey: "refund.success", RefundQueue: r.RefundQueue,
	}
	pay := payamqp.Topology{
		Exchange: r.PayExchange, TradeExchange: r.TradeExchange, RefundRequestedKey: "refund.requested", RefundQueue: r.PayRefundQueue,
		QueueType: broker.QueueQuorum, ErrorExchange: r.ErrorExchange, ErrorKey: "error", ErrorQueue: r.ErrorQueue,
	}
	ch, err := node.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, declare := range []func(*amqp.Channel) error{trade.Declare, pay.Declare} {
		if err := declare(ch); err != nil {
			t.Fatalf("declare the services' topology on %s: %v", node.Name, err)
		}
	}
}

// killDuringLoad SIGKILLs node a third into the load and returns the
// load's result. The node stays down until the checks are done, so the
// system must converge on the nodes left; it is started again, and must
// rejoin the cluster, when the scenario ends.
func (r *run) killDuringLoad(t *testing.T, node *testenv.RabbitNode) loadResult {
	t.Helper()
	load := r.goLoad(r.spread)
	time.Sleep(r.spread / 3)
	node.Kill(t)
	t.Cleanup(func() {
		node.Start(t)
		if running := r.cluster.Running(t); running != len(r.cluster.Nodes) {
			t.Errorf("%d nodes run in the cluster after %s restarted, want %d", running, node.Name, len(r.cluster.Nodes))
		}
	})
	r.notes = append(r.notes, "killed "+r.nodeName(node)+", restarted after the checks")
	return <-load
}

// nodeName names a node of the run's cluster by its place in AMQP_URL.
func (r *run) nodeName(node *testenv.RabbitNode) string {
	for i, n := range r.cluster.Nodes {
		if n == node {
			return fmt.Sprintf("node %d", i+1)
		}
	}
	return node.Name
}

// restartBroker stops and starts the RabbitMQ application of the test
// broker's node (testenv.RabbitCtl), and starts it again even if the test fails in between.
func restartBroker(t *testing.T) {
	t.Helper()
	ctl := func(args ...string) error {
		out, err := testenv.RabbitCtl(t, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
		return nil
	}
	started := false
	t.Cleanup(func() {
		if !started {
			_ = ctl("start_app")
			_ = ctl("await_startup")
		}
	})
	if err := ctl("stop_app"); err != nil {
		t.Fatal(err)
	}
	err := ctl("start_app")
	if err == nil {
		err = ctl("await_startup")
	}
	if err != nil {
		t.Fatal(err)
	}
	started = true
}

// storm re-publishes every pay.success it sees five times with its own
// message id and twice with new ones, until stop closes; it returns how
// many copies it published.
func (r *run) storm(t *testing.T, watched <-chan amqp.Delivery, stop <-chan struct{}) int {
	// The copies are pay's: a broker that redelivers and a relay that
	// republishes send them as pay's user.
	conn, err := amqp.Dial(r.PayBroker.URL)
	if err != nil {
		t.Errorf("storm: %v", err)
		return 0
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("storm: %v", err)
		return 0
	}
	copies := 0
	for {
		select {
		case <-stop:
			return copies
		case d, ok := <-watched:
			if !ok {
				return copies
			}
			if d.Headers["x-chaos-copy"] != nil {
				continue // the watch queue sees the storm's own copies too
			}
			for i := range 7 {
				msg := amqp.Publishing{
					Headers:     amqp.Table{"x-chaos-copy": int32(i + 1)},
					ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
					Type: d.Type, AppId: d.AppId, Timestamp: d.Timestamp, Body: d.Body, UserId: r.PayBroker.Name,
				}
				if i >= 5 {
					msg.MessageId = uuid.NewString()
				}
				if err := ch.Publish(r.PayExchange, "pay.success", false, false, msg); err != nil {
					t.Errorf("storm: %v", err)
					return copies
				}
				copies++
			}
		}
	}
}

// publishPoison publishes n messages trade cannot process, spread over
// spread, and returns their bodies. Some kinds fail decoding; the last
// kind is well formed but carries no message id and names no order, which
// only an inbox that insists on an id refuses.
func (r *run) publishPoison(t *testing.T, n int, spread time.Duration) map[string]bool {
	t.Helper()
	kinds := []func(i int) (body, id string){
		func(i int) (string, string) { return fmt.Sprintf("not json %d", i), fmt.Sprintf("poison-%d", i) },
		func(i int) (string, string) {
			return fmt.Sprintf(`{"bizOrderNo":%d}`, 900000000+i), fmt.Sprintf("poison-%d", i)
		},
		func(i int) (string, string) {
			return fmt.Sprintf(`{"bizOrderNo":%d,"payOrderId":1,"userId":1,"amount":-5,"paidAt":"2026-11-21T10:00:00Z"}`, 900000000+i), fmt.Sprintf("poison-%d", i)
		},
		func(i int) (string, string) {
			return fmt.Sprintf(`{"bizOrderNo":%d,"payOrderId":1,"userId":1,"amount":5,"paidAt":"2026-11-21T10:00:00Z"}`, 900000000+i), ""
		},
	}
	bodies := map[string]bool{}
	// Poison from pay's own user: parked for what it holds, not for who sent it.
	err := r.withChannelOf(r.PayBroker.URL, func(ch *amqp.Channel) error {
		for i := range n {
			body, id := kinds[i%len(kinds)](i)
			bodies[body] = true
			err := ch.Publish(r.PayExchange, "pay.success", false, false, amqp.Publishing{
				ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: "pay.success", Body: []byte(body),
				UserId: r.PayBroker.Name,
			})
			if err != nil {
				return err
			}
			time.Sleep(spread / time.Duration(n))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("publish poison: %v", err)
	}
	return bodies
}

// purge removes every message from trade's queue: events lost.
func (r *run) purge(t *testing.T) int {
	t.Helper()
	purged := 0
	err := r.withChannel(func(ch *amqp.Channel) error {
		n, err := ch.QueuePurge(r.PayQueue, false)
		purged = n
		return err
	})
	if err != nil {
		t.Fatalf("purge %s: %v", r.PayQueue, err)
	}
	return purged
}

// cancelRacing has the buyer of every fourth payment cancel the order at
// the moment the load pays it, and returns how many cancels succeeded.
func (r *run) cancelRacing(t *testing.T, spread time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var cancelled atomic.Int64
	start := time.Now()
	gap := spread / time.Duration(max(len(r.pop.payments), 1))
	trade := r.trades[0].baseURL()
	for i, p := range r.pop.payments {
		if i%4 != 1 {
			continue
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * gap)))
		wg.Go(func() {
			url := fmt.Sprintf("%s/orders/%d/cancel", trade, p.orderID)
			status, _, err := client.Send(context.Background(), http.MethodPost, url, p.token, "", nil)
			if err == nil && status == http.StatusOK {
				cancelled.Add(1)
			}
		})
	}
	wg.Wait()
	return int(cancelled.Load())
}
