package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"

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
// those permissions, through ctl (nil: the test broker's); and deletes them
// when the test ends. One rabbitmqctl call adds them all and one deletes
// them: each call starts an Erlang VM.
func NewBrokerUsers(tb testing.TB, amqpURL string, ctl Ctl, perms map[string]broker.Permissions) map[string]BrokerUser {
	tb.Helper()
	if ctl == nil {
		ctl = TestBrokerCtl(tb)
	}
	vhost := vhostOf(tb, amqpURL)
	users := make(map[string]BrokerUser, len(perms))
	var add, del []string
	for prefix, p := range perms {
		name := strings.ReplaceAll(Name(tb, "pt_"+prefix), ".", "_")
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			tb.Fatal(err)
		}
		password := hex.EncodeToString(b[:])
		add = append(add,
			fmt.Sprintf("ok = rabbit_auth_backend_internal:add_user(%s, %s, %s)", erlBinary(name), erlBinary(password), erlBinary(ctlActor)),
			fmt.Sprintf("ok = rabbit_auth_backend_internal:set_permissions(%s, %s, %s, %s, %s, %s)",
				erlBinary(name), erlBinary(vhost), erlBinary(p.Configure), erlBinary(p.Write), erlBinary(p.Read), erlBinary(ctlActor)))
		del = append(del, fmt.Sprintf("rabbit_auth_backend_internal:delete_user(%s, %s)", erlBinary(name), erlBinary(ctlActor)))
		users[prefix] = BrokerUser{Name: name, URL: asUser(tb, amqpURL, name, password)}
	}
	tb.Cleanup(func() {
		if _, err := ctl("eval", strings.Join(del, ", ")+"."); err != nil {
			tb.Errorf("delete the test's broker users: %v", err)
		}
	})
	if _, err := ctl("eval", strings.Join(add, ", ")+"."); err != nil {
		tb.Fatalf("add the test's broker users: %v", err)
	}
	return users
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
