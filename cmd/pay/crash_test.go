package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// payBinary builds the real pay binary once for the package's tests.
func payBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "paybin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "pay")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// crashWorld is one database, exchange and watching queue shared by the
// successive lives of a pay process.
type crashWorld struct {
	env        []string
	dbURL      string
	deliveries <-chan amqp.Delivery
}

func newCrashWorld(t *testing.T) *crashWorld {
	t.Helper()
	amqpURL := testenv.AMQPURL(t)
	dbURL := testenv.NewEmptyDatabase(t, "crash")
	exchange := testenv.Name(t, "pay.topic")
	deliveries := testenv.Watch(t, amqpURL, exchange, "pay.success")
	return &crashWorld{
		dbURL:      dbURL,
		deliveries: deliveries,
		env: []string{
			"PAY_DATABASE_URL=" + dbURL, "AMQP_URL=" + amqpURL, "AUTH_JWT_SECRET=s3cret",
			"PAY_HTTP_ADDR=127.0.0.1:0", "MQ_PAY_EXCHANGE=" + exchange, "PAY_BCRYPT_COST=4",
			"PAY_OUTBOX_POLL_INTERVAL=100ms",
		},
	}
}

// payProcess is one life of the pay binary.
type payProcess struct {
	cmd    *exec.Cmd
	base   string
	exited chan error
}

// start runs the pay binary with crash points armed and waits until it listens.
func (w *crashWorld) start(t *testing.T, crashPoints string) *payProcess {
	t.Helper()
	cmd := exec.Command(payBinary(t))
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, w.env...), "PAYTRADE_CRASH_POINTS="+crashPoints)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &payProcess{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		scanListenAddr(stdout, addr)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.exited:
		t.Fatalf("pay exited at start-up: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("pay did not start within 30s")
	}
	return p
}

// waitKilled waits for the process to die by SIGKILL, as a crash point does.
func (p *payProcess) waitKilled(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("pay ended with %v, want killed by SIGKILL at the crash point", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("pay did not reach its crash point within 20s")
	}
}

// post sends a JSON request; a transport error (the process died) is returned, not fatal.
func (p *payProcess) post(t *testing.T, path, token, body string) (int, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func (w *crashWorld) token(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := auth.Mint([]byte("s3cret"), p, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// prepare opens a wallet and a pay order through p and returns the pay path.
func (w *crashWorld) prepare(t *testing.T, p *payProcess) string {
	t.Helper()
	svc := w.token(t, auth.Principal{Service: true, Subject: "test"})
	if code, err := p.post(t, "/accounts", svc, `{"userId":1,"password":"123","balance":1000}`); err != nil || code != 201 {
		t.Fatalf("create wallet: %d %v", code, err)
	}
	user := w.token(t, auth.Principal{UserID: 1})
	if code, err := p.post(t, "/pay-orders", user, `{"bizOrderNo":9,"amount":300,"payChannelCode":"balance","payType":5}`); err != nil || code != 201 {
		t.Fatalf("apply: %d %v", code, err)
	}
	return "/pay-orders/1"
}

func (w *crashWorld) pendingIDs(t *testing.T) []string {
	t.Helper()
	pool, err := database.Open(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), `SELECT id::text FROM outbox_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (w *crashWorld) checkInvariants(t *testing.T, wantPaid int) {
	t.Helper()
	pool, err := database.Open(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	paytest.CheckInvariants(t, pool)
	if snap := paytest.Snap(t, pool); snap.Debits != wantPaid || snap.PaidOrders != wantPaid {
		t.Errorf("%d debits, %d paid pay orders; want %d of each", snap.Debits, snap.PaidOrders, wantPaid)
	}
}

func (w *crashWorld) nextDelivery(t *testing.T, within time.Duration) amqp.Delivery {
	t.Helper()
	select {
	case d := <-w.deliveries:
		return d
	case <-time.After(within):
		t.Fatalf("no pay.success event within %v", within)
	}
	return amqp.Delivery{}
}

func TestPayKilledAfterCommitBeforePublishLosesNoEvent(t *testing.T) {
	t.Parallel()
	w := newCrashWorld(t)
	first := w.start(t, crashpoint.PayAfterCommit)
	payPath := w.prepare(t, first)

	if _, err := first.post(t, payPath, w.token(t, auth.Principal{UserID: 1}), `{"pw":"123"}`); err == nil {
		t.Fatal("the payment returned normally; the crash point did not fire")
	}
	first.waitKilled(t)
	pending := w.pendingIDs(t)
	if len(pending) != 1 {
		t.Fatalf("%d events in the outbox after the crash, want the committed payment's one", len(pending))
	}
	select {
	case d := <-w.deliveries:
		t.Fatalf("event %s published before the crash point; the test did not test the gap", d.MessageId)
	case <-time.After(200 * time.Millisecond):
	}

	w.start(t, "")
	d := w.nextDelivery(t, 15*time.Second)
	if d.MessageId != pending[0] {
		t.Errorf("published message id %s, want the outbox event's %s", d.MessageId, pending[0])
	}
	testenv.WaitFor(t, 10*time.Second, "the outbox to empty", func() bool { return len(w.pendingIDs(t)) == 0 })
	w.checkInvariants(t, 1)
}

func TestPayKilledAfterPublishBeforeBookkeepingRepublishesTheSameMessageID(t *testing.T) {
	t.Parallel()
	w := newCrashWorld(t)
	first := w.start(t, crashpoint.RelayAfterConfirm)
	payPath := w.prepare(t, first)

	// The relay may kill the process before or after the response is
	// written; either way the payment is committed.
	_, _ = first.post(t, payPath, w.token(t, auth.Principal{UserID: 1}), `{"pw":"123"}`)
	first.waitKilled(t)
	published := w.nextDelivery(t, 10*time.Second)
	if pending := w.pendingIDs(t); len(pending) != 1 || pending[0] != published.MessageId {
		t.Fatalf("outbox after the crash = %v, want the published but unrecorded event %s", pending, published.MessageId)
	}

	w.start(t, "")
	again := w.nextDelivery(t, 15*time.Second)
	if again.MessageId != published.MessageId {
		t.Errorf("re-published message id %s, want the same %s so the consumer can deduplicate", again.MessageId, published.MessageId)
	}
	testenv.WaitFor(t, 10*time.Second, "the outbox to empty", func() bool { return len(w.pendingIDs(t)) == 0 })
	w.checkInvariants(t, 1)
}
