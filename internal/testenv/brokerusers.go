package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/broker"
)

// Ctl runs rabbitmqctl with args against a broker and returns its output.
type Ctl func(args ...string) (string, error)

// TestBrokerCtl is the Ctl of the test broker (AMQP_URL): see RabbitCtl.
func TestBrokerCtl(tb testing.TB) Ctl {
	return func(args ...string) (string, error) {
		out, err := RabbitCtl(tb, args...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("rabbitmqctl %s: %w\n%s", args[0], err, out)
		}
		return string(out), nil
	}
}

// BrokerUser is a broker user of one test: deleted when the test ends.
type BrokerUser struct {
	Name string
	// URL is the broker's AMQP_URL (every node of a cluster) as this user.
	URL string
}

// ctlActor is the acting user the broker's logs name for the tests' changes.
const ctlActor = "paytrade-tests"

// NewBrokerUsers adds one user per entry of perms (named after its key)
// to the virtual host of amqpURL, each with a random password and only
// those permissions, through ctl (nil: the test broker's way, see
// TestBrokerUsers); and deletes them when the test ends. One rabbitmqctl
// call adds them all and one deletes them: each call starts an Erlang VM.
func NewBrokerUsers(tb testing.TB, amqpURL string, ctl Ctl, perms map[string]broker.Permissions) map[string]BrokerUser {
	tb.Helper()
	if ctl != nil {
		return addBrokerUsers(tb, amqpURL, ctlAdmin{ctl}, perms)
	}
	if err := TestBrokerCtlAnswers(tb); err == nil {
		return addBrokerUsers(tb, amqpURL, ctlAdmin{TestBrokerCtl(tb)}, perms)
	}
	m, err := testManagementAdmin()
	if err != nil {
		tb.Fatalf("add the test's broker users: %v", TestBrokerUsers(tb))
	}
	return addBrokerUsers(tb, amqpURL, mgmtAdmin{m}, perms)
}

// addBrokerUsers is NewBrokerUsers through admin.
func addBrokerUsers(tb testing.TB, amqpURL string, admin userAdmin, perms map[string]broker.Permissions) map[string]BrokerUser {
	tb.Helper()
	vhost := vhostOf(tb, amqpURL)
	users := make(map[string]BrokerUser, len(perms))
	var added []addedUser
	for prefix, p := range perms {
		name := strings.ReplaceAll(Name(tb, "pt_"+prefix), ".", "_")
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			tb.Fatal(err)
		}
		password := hex.EncodeToString(b[:])
		added = append(added, addedUser{name: name, password: password, perms: p})
		users[prefix] = BrokerUser{Name: name, URL: asUser(tb, amqpURL, name, password)}
	}
	tb.Cleanup(func() {
		if err := admin.del(added); err != nil {
			tb.Errorf("delete the test's broker users: %v", err)
		}
	})
	if err := admin.add(vhost, added); err != nil {
		tb.Fatalf("add the test's broker users: %v", err)
	}
	return users
}

// TestBrokerUsers says why no broker users can be added to the test
// broker (AMQP_URL) from here, or nil if they can: through rabbitmqctl,
// which needs the node's Erlang cookie (root or user rabbitmq on the
// broker's machine), or else through the management API as an
// administrator (make infra's broker). Asked once per test binary.
func TestBrokerUsers(tb testing.TB) error {
	tb.Helper()
	if TestBrokerCtlAnswers(tb) == nil {
		return nil
	}
	if _, err := testManagementAdmin(); err != nil {
		return fmt.Errorf("rabbitmqctl cannot speak to the test broker (%v), nor can the management API add users (%v)",
			TestBrokerCtlAnswers(tb), err)
	}
	return nil
}

// NeedBrokerUsers is for a test that needs broker users of its own on the
// test broker: Missing, with the reason, where TestBrokerUsers says none
// can be added.
func NeedBrokerUsers(tb testing.TB) {
	tb.Helper()
	if err := TestBrokerUsers(tb); err != nil {
		tb.Log(err)
		Missing(tb, BrokerUsersNeed, "sudo make test")
	}
}

// BrokerUsersNeed is what a test without broker users of its own lacks.
const BrokerUsersNeed = "a broker user per service (rabbitmqctl as root, or the broker's management API)"

// UserOf is the user name of amqpURL's first node ("guest" if it names none,
// as the client then logs in).
func UserOf(tb testing.TB, amqpURL string) string {
	tb.Helper()
	uri, err := broker.ParseURL(broker.Nodes(amqpURL)[0])
	if err != nil {
		tb.Fatalf("test broker URL: %v", err)
	}
	return uri.Username
}

var (
	testCtlOnce sync.Once
	testCtlErr  error
)

// TestBrokerCtlAnswers is RabbitCtlAnswers, asked once per test binary.
func TestBrokerCtlAnswers(tb testing.TB) error {
	tb.Helper()
	testCtlOnce.Do(func() { testCtlErr = RabbitCtlAnswers(tb) })
	return testCtlErr
}

var testManagementAdmin = sync.OnceValues(func() (*Management, error) {
	m, err := TestManagement()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Administers(ctx); err != nil {
		return nil, err
	}
	return m, nil
})

type addedUser struct {
	name, password string
	perms          broker.Permissions
}

// userAdmin adds and deletes a test's broker users.
type userAdmin interface {
	add(vhost string, users []addedUser) error
	del(users []addedUser) error
}

// ctlAdmin adds and deletes users with one rabbitmqctl eval each.
type ctlAdmin struct{ ctl Ctl }

func (a ctlAdmin) add(vhost string, users []addedUser) error {
	var calls []string
	for _, u := range users {
		calls = append(calls,
			fmt.Sprintf("ok = rabbit_auth_backend_internal:add_user(%s, %s, %s)", erlBinary(u.name), erlBinary(u.password), erlBinary(ctlActor)),
			fmt.Sprintf("ok = rabbit_auth_backend_internal:set_permissions(%s, %s, %s, %s, %s, %s)",
				erlBinary(u.name), erlBinary(vhost), erlBinary(u.perms.Configure), erlBinary(u.perms.Write), erlBinary(u.perms.Read), erlBinary(ctlActor)))
	}
	_, err := a.ctl("eval", strings.Join(calls, ", ")+".")
	return err
}

func (a ctlAdmin) del(users []addedUser) error {
	var calls []string
	for _, u := range users {
		calls = append(calls, fmt.Sprintf("rabbit_auth_backend_internal:delete_user(%s, %s)", erlBinary(u.name), erlBinary(ctlActor)))
	}
	_, err := a.ctl("eval", strings.Join(calls, ", ")+".")
	return err
}

// mgmtAdmin adds and deletes users through the management API.
type mgmtAdmin struct{ m *Management }

func (a mgmtAdmin) add(vhost string, users []addedUser) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range users {
		if err := a.m.AddUser(ctx, vhost, u.name, u.password, u.perms); err != nil {
			return err
		}
	}
	return nil
}

func (a mgmtAdmin) del(users []addedUser) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, u := range users {
		errs = append(errs, a.m.DeleteUser(ctx, u.name))
	}
	return errors.Join(errs...)
}

// erlBinary is s as an Erlang binary literal. The names, passwords and
// patterns given here hold no quote or backslash (broker.Exactly writes
// none); anything else is refused rather than escaped.
func erlBinary(s string) string {
	if strings.ContainsAny(s, "\"\\") {
		panic(fmt.Sprintf("testenv: %q holds a quote or backslash", s))
	}
	return `<<"` + s + `">>`
}

// vhostOf is the virtual host of amqpURL's first node ("/" if it names none).
func vhostOf(tb testing.TB, amqpURL string) string {
	tb.Helper()
	uri, err := broker.ParseURL(broker.Nodes(amqpURL)[0])
	if err != nil {
		tb.Fatalf("test broker URL: %v", err)
	}
	return uri.Vhost
}

// asUser is amqpURL (every node) with user and password in place of its own.
func asUser(tb testing.TB, amqpURL, user, password string) string {
	tb.Helper()
	nodes := broker.Nodes(amqpURL)
	for i, node := range nodes {
		u, err := url.Parse(node)
		if err != nil {
			tb.Fatalf("test broker URL: %v", redact(node))
		}
		u.User = url.UserPassword(user, password)
		nodes[i] = u.String()
	}
	return strings.Join(nodes, ",")
}
