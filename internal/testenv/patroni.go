package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/database"
)

// PostgresBinDir is where the machine's PostgreSQL 15 server binaries are,
// which every node of a PatroniCluster runs.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PatroniCluster is a private PostgreSQL cluster of one test: one etcd and
// three nodes, each a Patroni daemon with its PostgreSQL, on loopback ports,
// configured by deploy/patroni/patroni.yml with synchronous replication.
// The test may kill any node, switch the leader over or stop etcd.
type PatroniCluster struct {
	// Scope is the cluster's name in etcd.
	Scope string
	Nodes []*PatroniNode

	dir      string
	config   string
	password string // the superuser's and the replication user's
	etcd     *exec.Cmd
	etcdDone chan struct{}
	etcdAddr string
	etcdPeer string
	postgres *user.User
	async    bool // synchronous_mode off (PatroniOptions.Async)
}

// PatroniNode is one node of a PatroniCluster: its Patroni daemon and the
// PostgreSQL that daemon runs.
type PatroniNode struct {
	// Name is the member's name in the cluster.
	Name string
	// Addr is the host:port PostgreSQL listens on.
	Addr string
	// API is the base URL of the node's Patroni REST API.
	API string

	cluster *PatroniCluster
	dataDir string
	log     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// PatroniOptions changes how StartPatroniCluster configures its cluster.
type PatroniOptions struct {
	// Async turns synchronous replication off and lets a standby that lags
	// be promoted: what Patroni does out of the box, which can lose
	// acknowledged commits on failover. For showing what that costs.
	Async bool
}

// patroniUnavailable skips the test with the reason when Patroni cannot run
// here, recorded for make test's closing line, and fails it under CI, where
// scripts/install-tools.sh has installed it and a skip would hide that the
// tests never ran (Missing).
func patroniUnavailable(tb testing.TB, err error) {
	tb.Helper()
	tb.Log(err)
	Missing(tb, "root, patroni and etcd, for tests that run a database on a Patroni cluster",
		"scripts/install-tools.sh patroni, then run make test as root (sudo make test)")
}

// StartPatroniCluster starts etcd and three Patroni nodes and waits until
// a leader takes writes with a synchronous standby beside it (with
// opts.Async, two streaming replicas). Everything it started is stopped
// and its files removed when the test ends, however it ends. It needs root
// (the nodes run as user postgres), patroni, etcd and PostgreSQL 15's
// binaries: without them the test is skipped, or fails under CI=true.
func StartPatroniCluster(tb testing.TB, opts PatroniOptions) *PatroniCluster {
	tb.Helper()
	if os.Geteuid() != 0 {
		patroniUnavailable(tb, errors.New("tests must run as root to start PostgreSQL as user postgres"))
	}
	for _, bin := range []string{"patroni", "etcd"} {
		if _, err := exec.LookPath(bin); err != nil {
			patroniUnavailable(tb, err)
		}
	}
	if _, err := os.Stat(filepath.Join(PostgresBinDir, "postgres")); err != nil {
		patroniUnavailable(tb, err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		patroniUnavailable(tb, err)
	}
	dir, err := os.MkdirTemp("", "paytrade-patroni-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &PatroniCluster{
		Scope:    shortName(tb),
		dir:      dir,
		config:   repoFile(tb, "deploy/patroni/patroni.yml"),
		password: "pw-" + shortName(tb),
		etcdAddr: FreeAddr(tb),
		etcdPeer: FreeAddr(tb),
		postgres: pg,
	}
	if err := c.chown(dir); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.stop(tb)
		if tb.Failed() {
			for _, n := range c.Nodes {
				tb.Logf("last output of Patroni node %s:\n%s", n.Name, tail(n.log, 40))
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	})
	c.startEtcd(tb)
	for i := range 3 {
		n := &PatroniNode{
			Name:    fmt.Sprintf("%s-%d", c.Scope, i+1),
			Addr:    FreeAddr(tb),
			API:     "http://" + FreeAddr(tb),
			cluster: c,
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			log:     filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)),
		}
		c.Nodes = append(c.Nodes, n)
		n.Start(tb)
	}
	// 20 s on a quiet machine; minutes on a loaded one.
	c.WaitHealthy(tb, 4*time.Minute)
	if opts.Async {
		c.async = true
		c.patchConfig(tb, map[string]any{"synchronous_mode": false, "maximum_lag_on_failover": 1 << 30})
		WaitFor(tb, 30*time.Second, "the cluster to drop its synchronous standby", func() bool {
			m, err := c.members()
			return err == nil && m.count("sync_standby") == 0 && m.count("leader") == 1
		})
	}
	return c
}

func (c *PatroniCluster) chown(path string) error {
	uid, _ := strconv.Atoi(c.postgres.Uid)
	gid, _ := strconv.Atoi(c.postgres.Gid)
	return os.Chown(path, uid, gid)
}

func (c *PatroniCluster) startEtcd(tb testing.TB) {
	tb.Helper()
	logFile, err := os.OpenFile(filepath.Join(c.dir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	client, peer := "http://"+c.etcdAddr, "http://"+c.etcdPeer
	cmd := exec.Command("etcd",
		"--name", "etcd", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "etcd="+peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", c.Scope)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.etcd, c.etcdDone = cmd, done
	WaitFor(tb, 20*time.Second, "etcd to answer", func() bool {
		resp, err := http.Get(client + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// StopEtcd stops etcd, as an outage of the cluster's consensus store: after
// Patroni's TTL the leader can no longer renew its lock and demotes itself.
func (c *PatroniCluster) StopEtcd(tb testing.TB) {
	tb.Helper()
	if c.etcd == nil {
		return
	}
	_ = c.etcd.Process.Signal(syscall.SIGKILL)
	<-c.etcdDone
	c.etcd = nil
}

// StartEtcd starts etcd again after StopEtcd, with the same data.
func (c *PatroniCluster) StartEtcd(tb testing.TB) {
	tb.Helper()
	if c.etcd != nil {
		return
	}
	c.startEtcd(tb)
}

// Start starts the node's Patroni daemon, which starts its PostgreSQL: a
// new node bootstraps the cluster or clones the leader, a node that ran
// before rejoins it.
func (n *PatroniNode) Start(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return
	}
	c := n.cluster
	logFile, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	uid, _ := strconv.Atoi(c.postgres.Uid)
	gid, _ := strconv.Atoi(c.postgres.Gid)
	api := strings.TrimPrefix(n.API, "http://")
	cmd := exec.Command("patroni", c.config)
	cmd.Dir = c.dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.dir,
		"LANG=C.UTF-8",
		"PATRONI_SCOPE=" + c.Scope,
		"PATRONI_NAME=" + n.Name,
		"PATRONI_ETCD3_HOSTS=" + c.etcdAddr,
		"PATRONI_RESTAPI_LISTEN=" + api,
		"PATRONI_RESTAPI_CONNECT_ADDRESS=" + api,
		"PATRONI_RESTAPI_USERNAME=patroni",
		"PATRONI_RESTAPI_PASSWORD=" + c.password,
		"PATRONI_POSTGRESQL_LISTEN=" + n.Addr,
		"PATRONI_POSTGRESQL_CONNECT_ADDRESS=" + n.Addr,
		"PATRONI_POSTGRESQL_DATA_DIR=" + n.dataDir,
		"PATRONI_POSTGRESQL_BIN_DIR=" + PostgresBinDir,
		"PATRONI_POSTGRESQL_PGPASS=" + n.dataDir + ".pgpass",
		"PATRONI_SUPERUSER_USERNAME=postgres",
		"PATRONI_SUPERUSER_PASSWORD=" + c.password,
		"PATRONI_REPLICATION_USERNAME=replicator",
		"PATRONI_REPLICATION_PASSWORD=" + c.password,
		"PATRONI_LOG_LEVEL=INFO",
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start Patroni node %s: %v", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited
}

// postmasterPID reads the pid of the node's running postmaster, 0 if none.
func (n *PatroniNode) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// KillPostgres SIGKILLs the node's postmaster, as a crash of PostgreSQL:
// its Patroni lives on and, the node being the leader, hands the
// leadership to the synchronous standby at once (primary_start_timeout 0).
// It returns when the postmaster is gone.
func (n *PatroniNode) KillPostgres(tb testing.TB) {
	tb.Helper()
	pid := n.postmasterPID()
	if pid == 0 {
		tb.Fatalf("Patroni node %s runs no PostgreSQL to kill", n.Name)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	WaitFor(tb, 10*time.Second, "the postmaster of "+n.Name+" to die", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}

// Kill SIGKILLs the node's Patroni and then its postmaster, as the death
// of its machine: the leader's lock then lapses only after the TTL.
func (n *PatroniNode) Kill(tb testing.TB) {
	tb.Helper()
	n.KillPatroni()
	if pid := n.postmasterPID(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		WaitFor(tb, 10*time.Second, "the postmaster of "+n.Name+" to die", func() bool {
			return syscall.Kill(pid, 0) != nil
		})
	}
}

// KillPatroni SIGKILLs the node's Patroni daemon, if it runs, and waits
// for it; its PostgreSQL, in a session of its own, lives on without it.
// Of the leader: its lock lapses after the TTL, and what the cluster
// knows of its WAL position stays where it was.
func (n *PatroniNode) KillPatroni() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
		n.cmd = nil
	}
}

// FrozenReplication is a standby's WAL receiver stopped by FreezeReplication.
type FrozenReplication struct {
	pid  int
	once sync.Once
}

// FreezeReplication stops (SIGSTOP) the node's WAL receiver, so the node,
// a standby, receives nothing more and acknowledges nothing: a commit that
// waits for it as the synchronous standby then waits for good. The WAL
// the primary still sends piles up unread in the receiver's socket. The
// test's end lets the receiver go on, if nothing else did.
func (n *PatroniNode) FreezeReplication(tb testing.TB) *FrozenReplication {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, n.NodeURL("postgres"))
	if err != nil {
		tb.Fatalf("connect to %s: %v", n.Name, err)
	}
	defer pool.Close()
	f := &FrozenReplication{}
	if err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_wal_receiver`).Scan(&f.pid); err != nil {
		tb.Fatalf("the WAL receiver of %s: %v", n.Name, err)
	}
	if err := syscall.Kill(f.pid, syscall.SIGSTOP); err != nil {
		tb.Fatalf("stop the WAL receiver of %s: %v", n.Name, err)
	}
	tb.Cleanup(f.Thaw)
	return f
}

// Thaw lets the WAL receiver go on (SIGCONT): it reads what piled up.
func (f *FrozenReplication) Thaw() {
	f.once.Do(func() { _ = syscall.Kill(f.pid, syscall.SIGCONT) })
}

// Drop SIGKILLs the WAL receiver instead, and with it the WAL it had not
// read: the standby restarts from what it had flushed, as if that WAL
// had never reached it.
func (f *FrozenReplication) Drop() {
	f.once.Do(func() { _ = syscall.Kill(f.pid, syscall.SIGKILL) })
}

// stop ends every process of the cluster: each Patroni by SIGKILL (so it
// restarts nothing), each postmaster by SIGQUIT, PostgreSQL's immediate
// shutdown, which also removes its shared memory, then etcd.
func (c *PatroniCluster) stop(tb testing.TB) {
	tb.Helper()
	for _, n := range c.Nodes {
		n.KillPatroni()
	}
	for _, n := range c.Nodes {
		pid := n.postmasterPID()
		if pid == 0 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	c.StopEtcd(tb)
}

// PatroniMember is one node as the cluster's REST API describes it.
type PatroniMember struct {
	Name  string `json:"name"`
	Role  string `json:"role"`  // leader, sync_standby or replica
	State string `json:"state"` // running, streaming, stopped, …
	Host  string `json:"host"`
	Port  int    `json:"port"`
	Lag   any    `json:"lag"`
}

// Up reports whether the member's PostgreSQL runs: as a primary, or as a
// standby streaming from it.
func (m PatroniMember) Up() bool { return m.State == "running" || m.State == "streaming" }

type patroniMembers []PatroniMember

func (m patroniMembers) count(role string) int {
	n := 0
	for _, member := range m {
		if member.Role == role && member.Up() {
			n++
		}
	}
	return n
}

// members asks the nodes, in turn, for the cluster's members.
func (c *PatroniCluster) members() (patroniMembers, error) {
	var errs []error
	client := http.Client{Timeout: 2 * time.Second}
	for _, n := range c.Nodes {
		resp, err := client.Get(n.API + "/cluster")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var body struct{ Members patroniMembers }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return body.Members, nil
	}
	return nil, errors.Join(errs...)
}

// MembersNow returns the cluster's members as the first node that answers
// sees them, or the error of each when none does.
func (c *PatroniCluster) MembersNow() ([]PatroniMember, error) {
	return c.members()
}

// node returns the node of the member called name, nil if none.
func (c *PatroniCluster) node(name string) *PatroniNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// role returns the running node with that role, nil if none.
func (c *PatroniCluster) role(role string) *PatroniNode {
	m, err := c.members()
	if err != nil {
		return nil
	}
	for _, member := range m {
		if member.Role == role && member.Up() {
			return c.node(member.Name)
		}
	}
	return nil
}

// LeaderNow returns the running leader's node, nil if there is none now.
func (c *PatroniCluster) LeaderNow() *PatroniNode { return c.role("leader") }

// Leader waits up to a minute for a running leader and returns its node.
func (c *PatroniCluster) Leader(tb testing.TB) *PatroniNode {
	tb.Helper()
	return c.waitRole(tb, "leader")
}

// Replica waits up to a minute for a streaming standby that is not the
// synchronous one and returns its node.
func (c *PatroniCluster) Replica(tb testing.TB) *PatroniNode {
	tb.Helper()
	return c.waitRole(tb, "replica")
}

// SyncStandby waits up to a minute for a streaming synchronous standby and
// returns its node.
func (c *PatroniCluster) SyncStandby(tb testing.TB) *PatroniNode {
	tb.Helper()
	return c.waitRole(tb, "sync_standby")
}

func (c *PatroniCluster) waitRole(tb testing.TB, role string) *PatroniNode {
	tb.Helper()
	var node *PatroniNode
	WaitFor(tb, time.Minute, "a "+role+" in Patroni cluster "+c.Scope, func() bool {
		if node = c.role(role); node == nil {
			time.Sleep(100 * time.Millisecond)
		}
		return node != nil
	})
	return node
}

// WaitHealthy waits until the cluster has a leader that takes writes and
// its other nodes stream from it, one as its synchronous standby unless
// synchronous mode is off.
func (c *PatroniCluster) WaitHealthy(tb testing.TB, within time.Duration) {
	tb.Helper()
	WaitFor(tb, within, "Patroni cluster "+c.Scope+" to have a leader and two streaming standbys", func() bool {
		m, err := c.members()
		if err != nil || m.count("leader") != 1 || m.count("sync_standby")+m.count("replica") != 2 {
			time.Sleep(250 * time.Millisecond) // Patroni's REST API is no place to spin
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		pool, err := database.Open(ctx, c.URL("postgres"))
		if err != nil {
			return false
		}
		defer pool.Close()
		if database.Writable(pool)(ctx) != nil {
			return false
		}
		var sync bool
		if err := pool.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names') <> ''`).Scan(&sync); err != nil {
			return false
		}
		// A synchronous cluster is whole only once the leader has named
		// its synchronous standby: until its next loop after both
		// replicas stream, it has none, and commits wait for nobody.
		return sync == !c.async && (m.count("sync_standby") == 1) == !c.async
	})
}

// URL returns a database URL naming every node of the cluster, which takes
// the one that takes writes (target_session_attrs=read-write): what a
// service is configured with.
func (c *PatroniCluster) URL(db string) string {
	hosts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		hosts[i] = n.Addr
	}
	return c.url(strings.Join(hosts, ","), db, "&target_session_attrs=read-write")
}

// NodeURL returns the URL of database db on this node alone.
func (n *PatroniNode) NodeURL(db string) string {
	return n.cluster.url(n.Addr, db, "")
}

func (c *PatroniCluster) url(hosts, db, query string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     hosts,
		Path:     "/" + db,
		RawQuery: "sslmode=disable&connect_timeout=2" + query,
	}
	return u.String()
}

// NewDatabase creates a database on the cluster with the migrations in dir
// of fsys applied and returns its cluster URL. The cluster goes when the
// test ends, and the database with it.
func (c *PatroniCluster) NewDatabase(tb testing.TB, fsys fs.FS, dir string) string {
	tb.Helper()
	dbURL := c.NewEmptyDatabase(tb, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := database.Migrate(ctx, dbURL, fsys, dir); err != nil {
		tb.Fatalf("migrate database on Patroni cluster: %v", err)
	}
	return dbURL
}

// NewEmptyDatabase creates an empty database named after prefix on the
// cluster and returns its cluster URL.
func (c *PatroniCluster) NewEmptyDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	dbURL := c.URL("pt_" + strings.ReplaceAll(prefix, ".", "_"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := database.Create(ctx, dbURL); err != nil {
		tb.Fatalf("create database on Patroni cluster: %v", err)
	}
	// A client of the cluster's URL tries the nodes in turn, and pgx gives
	// up at the first that says the database does not exist: wait until
	// every standby has replayed its creation.
	name := "pt_" + strings.ReplaceAll(prefix, ".", "_")
	for _, n := range c.Nodes {
		WaitFor(tb, 30*time.Second, "database "+name+" on "+n.Name, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, n.NodeURL(name))
			if err != nil {
				return false
			}
			_ = conn.Close(ctx)
			return true
		})
	}
	return dbURL
}

// Switchover asks Patroni for a planned switchover from the leader to
// another node (patronictl switchover --force), and waits until a new
// leader takes writes.
func (c *PatroniCluster) Switchover(tb testing.TB) {
	tb.Helper()
	leader := c.Leader(tb)
	dcs := filepath.Join(c.dir, "patronictl.yml")
	cfg := fmt.Sprintf("namespace: /paytrade/\nscope: %s\netcd3:\n  hosts: %s\nctl:\n  insecure: true\nrestapi:\n  authentication:\n    username: patroni\n    password: %s\n", c.Scope, c.etcdAddr, c.password)
	if err := os.WriteFile(dcs, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("patronictl", "-c", dcs, "switchover", "--force", "--leader", leader.Name, c.Scope).CombinedOutput()
	if err != nil {
		tb.Fatalf("patronictl switchover: %v\n%s", err, out)
	}
	WaitFor(tb, time.Minute, "a new leader after the switchover", func() bool {
		l := c.role("leader")
		return l != nil && l != leader
	})
}

// patchConfig changes the cluster's dynamic configuration, as
// patronictl edit-config does.
func (c *PatroniCluster) patchConfig(tb testing.TB, change map[string]any) {
	tb.Helper()
	body, err := json.Marshal(change)
	if err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	for _, n := range c.Nodes {
		req, err := http.NewRequest(http.MethodPatch, n.API+"/config", bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		req.SetBasicAuth("patroni", c.password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		lastErr = fmt.Errorf("%s: %s", resp.Status, b)
	}
	tb.Fatalf("change the Patroni configuration: %v", lastErr)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(all[max(len(all)-lines, 0):], "\n")
}
