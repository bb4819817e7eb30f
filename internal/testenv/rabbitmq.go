package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RabbitNode is a private RabbitMQ node of one test, beside the machine's
// shared broker: the test may kill, restart, cluster or alarm it. It runs
// through scripts/rabbitmq-node.sh, as root starting it as user rabbitmq.
type RabbitNode struct {
	// Name is the Erlang node name, e.g. pt1a2b3c4d@localhost.
	Name string
	// URL is its AMQP URL (guest/guest on a loopback port).
	URL string
	// Addr is the host:port of its AMQP listener.
	Addr string
	// ManagementURL is the address of its management API, if it runs one
	// (StartRabbitNodeWithManagement).
	ManagementURL string

	dir        string
	scriptPath string
}

// StartRabbitNode starts a private node of the machine's own rabbitmq-server
// on a free loopback port and waits until it accepts connections. It is
// stopped and its files are removed when the test ends, whatever the outcome.
// Without root or rabbitmq-server the test is skipped (testenv.Missing).
func StartRabbitNode(tb testing.TB) *RabbitNode {
	tb.Helper()
	return startRabbitNode(tb, false)
}

// StartRabbitNodeWithManagement is StartRabbitNode with the management
// plugin on, its HTTP API at the node's ManagementURL: a broker a test
// reads as it would one on another machine.
func StartRabbitNodeWithManagement(tb testing.TB) *RabbitNode {
	tb.Helper()
	return startRabbitNode(tb, true)
}

func startRabbitNode(tb testing.TB, management bool) *RabbitNode {
	tb.Helper()
	name := shortName(tb)
	script := repoFile(tb, "scripts/rabbitmq-node.sh")
	dir := rabbitDir(tb, "", "a private RabbitMQ node")
	addr, dist := FreeAddr(tb), FreeAddr(tb)
	n := &RabbitNode{
		Name:       name + "@localhost",
		URL:        "amqp://guest:guest@" + addr + "/",
		Addr:       addr,
		dir:        dir,
		scriptPath: script,
	}
	tb.Cleanup(func() {
		if err := n.run("stop"); err != nil {
			tb.Errorf("stop %s: %v", n.Name, err)
		}
		if tb.Failed() {
			tb.Logf("last output of %s:\n%s", n.Name, n.logTail())
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	})
	args := []string{name, port(addr), port(dist)}
	if management {
		mgmt := FreeAddr(tb)
		n.ManagementURL = "http://" + mgmt + "/"
		args = append(args, port(mgmt))
	}
	if _, err := n.script(nil, "start", args...); err != nil {
		tb.Fatalf("start %s: %v", n.Name, err)
	}
	return n
}

// shortName is a node name unique to this run.
func shortName(tb testing.TB) string {
	tb.Helper()
	name := Name(tb, "pt")
	return "pt" + name[strings.LastIndex(name, ".")+1:]
}

// RabbitCluster is a private RabbitMQ cluster of one test: its nodes, each
// a RabbitNode the test may kill and restart.
type RabbitCluster struct {
	Nodes []*RabbitNode
	// URL is the AMQP_URL of every node, separated by commas, in order.
	URL string
}

// StartRabbitCluster starts n private nodes and joins them into one
// cluster (scripts/rabbitmq-cluster.sh), of the RabbitMQ under test: the
// machine's own, or with TEST_RABBITMQ_ROOT set, the RabbitMQ 4.x of that
// root (scripts/test-rabbitmq4.sh sets it). It is stopped and its files
// removed when the test ends.
func StartRabbitCluster(tb testing.TB, n int) *RabbitCluster {
	tb.Helper()
	root := os.Getenv("TEST_RABBITMQ_ROOT")
	dir := rabbitDir(tb, root, "a RabbitMQ cluster")
	name := shortName(tb)
	script := repoFile(tb, "scripts/rabbitmq-cluster.sh")
	c := &RabbitCluster{}
	args := []string{"start", dir, name}
	var urls []string
	for i := range n {
		addr := FreeAddr(tb)
		args = append(args, port(addr)+":"+port(FreeAddr(tb)))
		node := &RabbitNode{
			Name: fmt.Sprintf("%s%d@localhost", name, i+1), URL: "amqp://guest:guest@" + addr + "/", Addr: addr,
			dir: filepath.Join(dir, strconv.Itoa(i+1)), scriptPath: repoFile(tb, "scripts/rabbitmq-node.sh"),
		}
		c.Nodes = append(c.Nodes, node)
		urls = append(urls, node.URL)
	}
	c.URL = strings.Join(urls, ",")
	tb.Cleanup(func() {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			tb.Errorf("stop the cluster in %s: %v\n%s", dir, err, out)
		}
		if tb.Failed() {
			for _, node := range c.Nodes {
				tb.Logf("last output of %s:\n%s", node.Name, node.logTail())
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	})
	cmd := exec.Command(script, args...)
	if root != "" {
		cmd.Env = append(os.Environ(), "RABBITMQ_ROOT="+root)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("start a cluster of %d nodes: %v\n%s", n, err, out)
	}
	return c
}

// TryCtl runs rabbitmqctl with args against the node and returns its
// output, or the error, for a caller that can live with a node that does
// not answer.
func (n *RabbitNode) TryCtl(args ...string) (string, error) {
	return n.script(nil, "ctl", args...)
}

// Ctl runs rabbitmqctl with args against the first node that answers.
func (c *RabbitCluster) Ctl(args ...string) (string, error) {
	var errs []error
	for _, node := range c.Nodes {
		out, err := node.TryCtl(args...)
		if err == nil {
			return out, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", node.Name, err))
	}
	return "", errors.Join(errs...)
}

// Running returns how many nodes the cluster's first node that answers
// sees running in the cluster.
func (c *RabbitCluster) Running(tb testing.TB) int {
	tb.Helper()
	for _, asked := range c.Nodes {
		out, err := asked.script(nil, "ctl", "-q", "cluster_status", "--formatter", "json")
		if err != nil {
			continue
		}
		var status struct {
			Running []string `json:"running_nodes"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &status); err != nil {
			tb.Fatalf("cluster_status on %s: %v\n%s", asked.Name, err, out)
		}
		return len(status.Running)
	}
	tb.Fatal("no node of the cluster answers")
	return 0
}

// Leader returns the node that leads the quorum queue.
func (c *RabbitCluster) Leader(tb testing.TB, queue string) *RabbitNode {
	tb.Helper()
	for _, asked := range c.Nodes {
		out, err := asked.script(nil, "ctl", "-q", "list_queues", "name", "leader", "--formatter", "json")
		if err != nil {
			continue // a node that is down cannot say
		}
		var queues []struct{ Name, Leader string }
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &queues); err != nil {
			tb.Fatalf("list_queues on %s: %v\n%s", asked.Name, err, out)
		}
		for _, q := range queues {
			if q.Name != queue {
				continue
			}
			for _, node := range c.Nodes {
				if node.Name == q.Leader {
					return node
				}
			}
			tb.Fatalf("queue %s is led by %s, not a node of this cluster", queue, q.Leader)
		}
		tb.Fatalf("no quorum queue %s in the cluster", queue)
	}
	tb.Fatal("no node of the cluster answers")
	return nil
}

// rabbitDir checks that what, a node or cluster of the RabbitMQ in root
// ("" for the machine's own), can run here and makes the directory its
// files go in (inside the root, if there is one).
func rabbitDir(tb testing.TB, root, what string) string {
	tb.Helper()
	server := filepath.Join(root, "/usr/lib/rabbitmq/bin/rabbitmq-server")
	if _, err := os.Stat(server); err != nil {
		tb.Log(err)
		Missing(tb, "a local rabbitmq-server, for tests that start RabbitMQ nodes of their own",
			"install rabbitmq-server (Debian: apt-get install rabbitmq-server), then run make test as root")
	}
	if os.Geteuid() != 0 {
		tb.Logf("%s runs as user rabbitmq: only root can start it", what)
		Missing(tb, "root, for tests that start RabbitMQ nodes of their own", "run make test as root (sudo make test)")
	}
	parent := ""
	if root != "" {
		parent = filepath.Join(root, "tmp")
	}
	dir, err := os.MkdirTemp(parent, "paytrade-rabbit-")
	if err != nil {
		tb.Fatal(err)
	}
	// User rabbitmq must reach its files inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Ctl runs rabbitmqctl with args against the node and returns its output,
// failing the test on an error.
func (n *RabbitNode) Ctl(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := n.script(nil, "ctl", args...)
	if err != nil {
		tb.Fatalf("rabbitmqctl %s on %s: %v", strings.Join(args, " "), n.Name, err)
	}
	return out
}

// Kill SIGKILLs the node, as a crash would, and waits until it is gone.
func (n *RabbitNode) Kill(tb testing.TB) {
	tb.Helper()
	if err := n.run("kill"); err != nil {
		tb.Fatalf("kill %s: %v", n.Name, err)
	}
}

// Start starts the node again after Kill, on the same ports and
// with the same data, and waits until it accepts connections.
func (n *RabbitNode) Start(tb testing.TB) {
	tb.Helper()
	if err := n.run("start"); err != nil {
		tb.Fatalf("start %s again: %v", n.Name, err)
	}
}

// Dial opens a connection to the node; the test closes it when it ends.
func (n *RabbitNode) Dial(tb testing.TB) *amqp.Connection {
	tb.Helper()
	conn, err := amqp.DialConfig(n.URL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		tb.Fatalf("connect to %s: %v", n.Name, err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (n *RabbitNode) run(command string) error {
	_, err := n.script(nil, command)
	return err
}

// script runs scripts/rabbitmq-node.sh COMMAND DIR ARGS... with env added,
// returning its output; a failure's error includes the output.
func (n *RabbitNode) script(env []string, command string, args ...string) (string, error) {
	cmd := exec.Command(n.scriptPath, append([]string{command, n.dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%w\n%s", err, out)
	}
	return string(out), nil
}

// RabbitCtl returns the command that runs rabbitmqctl with args against the
// node of the test broker (AMQP_URL): the machine's own, or, when
// TEST_RABBITMQ_NODE_DIR names the directory of a node that
// scripts/rabbitmq-node.sh runs (RabbitMQ 4.x from scripts/rabbitmq4.sh),
// that node.
func RabbitCtl(tb testing.TB, args ...string) *exec.Cmd {
	tb.Helper()
	dir := os.Getenv("TEST_RABBITMQ_NODE_DIR")
	if dir == "" {
		return exec.Command("rabbitmqctl", args...)
	}
	return exec.Command(repoFile(tb, "scripts/rabbitmq-node.sh"), append([]string{"ctl", dir}, args...)...)
}

// RabbitCtlAnswers reports whether rabbitmqctl (RabbitCtl) can speak to the
// test broker's node here: it needs the node's Erlang cookie, so root or
// user rabbitmq on the broker's own machine.
func RabbitCtlAnswers(tb testing.TB) error {
	tb.Helper()
	out, err := RabbitCtl(tb, "-q", "list_vhosts").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("rabbitmqctl list_vhosts: %w: %s", err, lines[len(lines)-1])
	}
	return nil
}

// logTail returns the end of the node's own log, for a failing test.
func (n *RabbitNode) logTail() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "log", n.Name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-40, 0):], "\n")
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
})

// repoFile returns the path of a file of this repository, from the test's
// working directory (its package's directory).
func repoFile(tb testing.TB, rel string) string {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatalf("find the repository: %v", err)
	}
	return filepath.Join(root, rel)
}
