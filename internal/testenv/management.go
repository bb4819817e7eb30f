package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

// ManagementURLEnv names the variable that gives the HTTP address of the
// test broker's management API when it is not at port 15672 of the AMQP
// host (make infra writes it, for the broker of the compose file).
const ManagementURLEnv = "TEST_RABBITMQ_MANAGEMENT_URL"

// Management speaks to a RabbitMQ broker's management API (the
// rabbitmq_management plugin) over HTTP, as the user of an AMQP URL, in
// that URL's virtual host: it reads what AMQP does not tell, such as how
// many messages of a queue are delivered and not yet acked, from any
// machine that reaches the broker, with no rabbitmqctl.
type Management struct {
	base     *url.URL
	user     string
	password string
	vhost    string
	client   *http.Client
}

// NewManagement returns the management API of the broker at amqpURL (its
// first node, if it lists a cluster's): at managementURL if not empty,
// else at port 15672 of the AMQP host. It asks the API once, and returns
// an error if it does not answer as the AMQP user, or is another broker's
// than the one the AMQP URL reaches (their cluster names differ).
func NewManagement(amqpURL, managementURL string) (*Management, error) {
	first, _, _ := strings.Cut(amqpURL, ",")
	au, err := url.Parse(first)
	if err != nil {
		return nil, fmt.Errorf("parse the AMQP URL: %w", err)
	}
	if managementURL == "" {
		managementURL = "http://" + net.JoinHostPort(au.Hostname(), "15672") + "/"
	}
	base, err := url.Parse(managementURL)
	if err != nil {
		return nil, fmt.Errorf("parse the management URL: %w", err)
	}
	m := &Management{
		base:   base,
		user:   au.User.Username(),
		vhost:  strings.TrimPrefix(au.Path, "/"),
		client: &http.Client{Timeout: 5 * time.Second},
	}
	m.password, _ = au.User.Password()
	switch {
	case base.User != nil:
		m.user = base.User.Username()
		m.password, _ = base.User.Password()
		base.User = nil
	case au.User == nil:
		m.user, m.password = "guest", "guest"
	}
	if m.vhost == "" {
		m.vhost = "/"
	}
	var overview struct {
		ClusterName string `json:"cluster_name"`
	}
	if err := m.get(context.Background(), "overview", &overview); err != nil {
		return nil, err
	}
	// The API must be the AMQP broker's own, not another broker's that
	// happens to listen where it was looked for (a compose file's, say).
	conn, err := amqp.DialConfig(first, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, fmt.Errorf("connect to the broker: %w", err)
	}
	defer conn.Close()
	if name, _ := conn.Properties["cluster_name"].(string); name != overview.ClusterName {
		return nil, fmt.Errorf("the management API at %s is of cluster %q, the broker of the AMQP URL of %q",
			base.Redacted(), overview.ClusterName, name)
	}
	return m, nil
}

// TestManagement returns the management API of the test broker (AMQP_URL,
// TEST_RABBITMQ_MANAGEMENT_URL), or the error that says why it cannot.
func TestManagement() (*Management, error) {
	u := os.Getenv("AMQP_URL")
	if u == "" {
		u = DefaultAMQPURL
	}
	return NewManagement(u, os.Getenv(ManagementURLEnv))
}

// Unacked returns, for each queue, how many of its messages are delivered
// and not yet acked, from the broker's statistics (up to
// collect_statistics_interval old, 5 s by default). A queue the broker
// does not have is an error.
func (m *Management) Unacked(ctx context.Context, queues ...string) (map[string]int, error) {
	n := make(map[string]int, len(queues))
	for _, q := range queues {
		var info struct {
			Unacked *int `json:"messages_unacknowledged"`
		}
		if err := m.get(ctx, "queues/"+url.PathEscape(m.vhost)+"/"+url.PathEscape(q), &info); err != nil {
			return nil, err
		}
		// A queue whose first statistics are not out yet has none to tell.
		if info.Unacked != nil {
			n[q] = *info.Unacked
		} else {
			n[q] = 0
		}
	}
	return n, nil
}

// get reads the API's path (under /api/) into v.
func (m *Management) get(ctx context.Context, path string, v any) error {
	return m.do(ctx, http.MethodGet, path, nil, v)
}

// do sends body (if not nil) as JSON to the API's path (under /api/) and
// reads the answer into v (if not nil).
func (m *Management) do(ctx context.Context, method, path string, body, v any) error {
	u := m.base.JoinPath("api")
	u.RawPath = u.EscapedPath() + "/" + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), payload)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.user, m.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("management API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var reason struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&reason)
		return fmt.Errorf("management API %s %s: %s %s", method, u.Redacted(), resp.Status, reason.Reason)
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("management API %s %s: %w", method, u.Redacted(), err)
	}
	return nil
}

// AddUser adds a user with password and only perms in virtual host vhost;
// the user acting must be an administrator.
func (m *Management) AddUser(ctx context.Context, vhost, name, password string, perms broker.Permissions) error {
	if err := m.do(ctx, http.MethodPut, "users/"+url.PathEscape(name),
		map[string]string{"password": password, "tags": ""}, nil); err != nil {
		return err
	}
	return m.do(ctx, http.MethodPut, "permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(name),
		map[string]string{"configure": perms.Configure, "write": perms.Write, "read": perms.Read}, nil)
}

// DeleteUser deletes a user (and with it its permissions).
func (m *Management) DeleteUser(ctx context.Context, name string) error {
	return m.do(ctx, http.MethodDelete, "users/"+url.PathEscape(name), nil, nil)
}

// Administers reports whether the API's user may add users (lists them).
func (m *Management) Administers(ctx context.Context) error {
	var users []json.RawMessage
	return m.get(ctx, "users", &users)
}
