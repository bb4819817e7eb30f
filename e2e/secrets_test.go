package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// rawPassword holds the characters that break a URL written unencoded.
const rawPassword = "Zx9/abc+def="

// binaries are the two services, each with the name of its database URL.
var binaries = []struct{ pkg, dbEnv string }{
	{"github.com/paytrade/paytrade/cmd/pay", "PAY_DATABASE_URL"},
	{"github.com/paytrade/paytrade/cmd/trade", "TRADE_DATABASE_URL"},
}

// Each service is given a database and a broker it could start with, so
// that only its keys stand in its way.
func TestServicesRefuseToStartWithoutKeysOrWithTheDevelopmentKeys(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	exchange, errExchange := testenv.Name(t, "pay.topic"), testenv.Name(t, "error.direct")
	queue, errQueue := testenv.Name(t, "mark.order.pay.queue"), testenv.Name(t, "error.queue")
	testenv.DeleteOnCleanup(t, amqpURL, []string{exchange, errExchange}, []string{queue, errQueue})
	devDir := filepath.Join(t.TempDir(), "dev")
	if err := auth.DevKeySet().WriteDir(devDir); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		bin := testenv.Build(t, b.pkg)
		name := b.pkg[strings.LastIndex(b.pkg, "/")+1:]
		startable := []string{b.dbEnv + "=" + testenv.NewEmptyDatabase(t, "keys_"+name), "AMQP_URL=" + amqpURL,
			"PAY_HTTP_ADDR=127.0.0.1:0", "TRADE_HTTP_ADDR=127.0.0.1:0", "MQ_PAY_EXCHANGE=" + exchange,
			"PAY_MQ_TRADE_USER=trade", "TRADE_MQ_PAY_USER=pay", "MQ_MARK_ORDER_PAY_QUEUE=" + queue, "MQ_ERROR_EXCHANGE=" + errExchange, "MQ_ERROR_QUEUE=" + errQueue}
		// Its own fresh key, but a jwks that trusts the published keys.
		trusting := t.TempDir()
		if err := auth.WritePrivateKey(trusting, authtest.New(t).Signer(name)); err != nil {
			t.Fatal(err)
		}
		if err := auth.WriteJWKS(trusting, auth.DevKeySet().Public()); err != nil {
			t.Fatal(err)
		}
		for what, env := range map[string][]string{
			"no keys":                              nil,
			"the development keys":                 {"PAYTRADE_KEYS_DIR=" + devDir},
			"a jwks trusting the development keys": {"PAYTRADE_KEYS_DIR=" + trusting},
			"an empty key directory":               {"PAYTRADE_KEYS_DIR=" + t.TempDir()},
			"PAYTRADE_DEV=0":                       {"PAYTRADE_DEV=0"},
		} {
			t.Run(name+"/"+what, func(t *testing.T) {
				out, err := testenv.RunUntilExit(t, bin, append(env, startable...), 20*time.Second)
				if err == nil {
					t.Fatalf("started and stopped cleanly; want a refusal\n%s", out)
				}
				if !strings.Contains(out, "PAYTRADE_KEYS_DIR") || strings.Contains(out, "listening") {
					t.Errorf("refusal does not name PAYTRADE_KEYS_DIR, or it listened first:\n%s", out)
				}
				if strings.Contains(out, "PRIVATE KEY") {
					t.Errorf("refusal shows a key:\n%s", out)
				}
			})
		}
	}
}

// privateKeyText is the text of service's private key in dir, which no
// output may hold.
func privateKeyText(tb testing.TB, dir, service string) string {
	tb.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, auth.KeyFile(service)))
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(pem)), "\n")
	return strings.Join(lines[1:len(lines)-1], "")
}

// leaks returns what of the secrets, in any spelling a URL gives them, out holds.
func leaks(out string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		for _, spelling := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.UserPassword("u", s).String()[2:]} {
			if strings.Contains(out, spelling) {
				found = append(found, spelling)
			}
		}
	}
	return found
}

func TestNoSecretInAnyLogLineOrErrorWhateverFails(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	broker, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	withPassword := func(raw string, password string, encoded bool) string {
		u, _ := url.Parse(raw)
		if encoded {
			u.User = url.UserPassword(u.User.Username(), password)
			return u.String()
		}
		return u.Scheme + "://" + u.User.Username() + ":" + password + "@" + u.Host + u.Path + "?" + u.RawQuery
	}
	for _, b := range binaries {
		bin := testenv.Build(t, b.pkg)
		name := b.pkg[strings.LastIndex(b.pkg, "/")+1:]
		dbURL := testenv.NewEmptyDatabase(t, "leak_"+name)
		exchange := testenv.Name(t, "pay.topic")
		testenv.DeleteOnCleanup(t, amqpURL, []string{exchange}, nil)
		keyDir := authtest.Shared(t).Dir(t, name)
		key := privateKeyText(t, keyDir, name)
		env := func(db, amqp string) []string {
			return []string{b.dbEnv + "=" + db, "AMQP_URL=" + amqp, "PAYTRADE_KEYS_DIR=" + keyDir, testenv.PayPeppersEnv,
				"PAY_HTTP_ADDR=127.0.0.1:0", "TRADE_HTTP_ADDR=127.0.0.1:0", "MQ_PAY_EXCHANGE=" + exchange,
				"PAY_MQ_TRADE_USER=trade", "TRADE_MQ_PAY_USER=pay", "AMQP_RECONNECT_INITIAL_INTERVAL=20ms", "AMQP_RECONNECT_MAX_INTERVAL=50ms"}
		}

		t.Run(name+"/broker password not percent-encoded", func(t *testing.T) {
			out, err := testenv.RunUntilExit(t, bin, env(dbURL, withPassword(amqpURL, rawPassword, false)), 20*time.Second)
			if err == nil || !strings.Contains(out, "AMQP_URL") {
				t.Errorf("exit %v, want a refusal naming AMQP_URL\n%s", err, out)
			}
			if l := leaks(out, rawPassword, key); len(l) > 0 {
				t.Errorf("output holds %q:\n%s", l, out)
			}
		})
		t.Run(name+"/database password not percent-encoded", func(t *testing.T) {
			out, err := testenv.RunUntilExit(t, bin, env(withPassword(dbURL, rawPassword, false), amqpURL), 20*time.Second)
			if err == nil || !strings.Contains(out, "database URL is malformed") {
				t.Errorf("exit %v, want a refusal saying the database URL is malformed\n%s", err, out)
			}
			if l := leaks(out, rawPassword, key); len(l) > 0 {
				t.Errorf("output holds %q:\n%s", l, out)
			}
		})
		t.Run(name+"/broker refuses the password on every reconnect", func(t *testing.T) {
			p := testenv.StartProcess(t, bin, name, env(withPassword(dbURL, rawPassword, true), withPassword(amqpURL, rawPassword, true)))
			failed := regexp.MustCompile(`broker connection attempt failed`)
			testenv.WaitFor(t, 20*time.Second, "three failed reconnects logged", func() bool {
				return len(failed.FindAllString(p.Output(), -1)) >= 3
			})
			p.Kill()
			out := p.Output()
			if !strings.Contains(out, broker.Host) {
				t.Errorf("the failed attempts do not say which broker:\n%s", out)
			}
			if l := leaks(out, rawPassword, key); len(l) > 0 {
				t.Errorf("output holds %q:\n%s", l, out)
			}
		})
	}
}

// TestPasswordsWithAnyCharacterWork gives the broker a user whose password
// holds / + =, percent-encoded in AMQP_URL, and pay connects with it. The
// test database server trusts local connections, so for PostgreSQL the
// same password proves only that pgx reads the URL; RabbitMQ checks it.
func TestPasswordsWithAnyCharacterWork(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	if err := testenv.RabbitCtlAnswers(t); err != nil {
		t.Log(err)
		testenv.Missing(t, "rabbitmqctl on the broker's machine, to add a broker user",
			"run make test as root where the broker runs")
	}
	user := testenv.Name(t, "pt_user")
	topo := testenv.NewTopology(t, amqpURL)
	rabbitmqctl := func(args ...string) {
		t.Helper()
		if out, err := testenv.RabbitCtl(t, args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s", args[0], err, out)
		}
	}
	rabbitmqctl("add_user", user, rawPassword)
	t.Cleanup(func() { rabbitmqctl("delete_user", user) })
	var names []string
	for _, name := range topo.Map() {
		names = append(names, regexp.QuoteMeta(name))
	}
	// pay declares its part of the topology, and nothing else is allowed.
	only := "^(" + strings.Join(names, "|") + ")$"
	u, _ := url.Parse(amqpURL)
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	rabbitmqctl("set_permissions", "-p", vhost, user, only, only, only)

	u.User = url.UserPassword(user, rawPassword)
	db, _ := url.Parse(testenv.NewEmptyDatabase(t, "anychar"))
	db.User = url.UserPassword(db.User.Username(), rawPassword)
	keyDir := authtest.Shared(t).Dir(t, auth.IssuerPay)
	p := testenv.StartProcess(t, testenv.Build(t, "github.com/paytrade/paytrade/cmd/pay"), "pay", append([]string{
		"PAY_DATABASE_URL=" + db.String(), "AMQP_URL=" + u.String(), "PAYTRADE_KEYS_DIR=" + keyDir,
		"PAY_HTTP_ADDR=127.0.0.1:0", "PAY_MQ_TRADE_USER=trade", testenv.PayPeppersEnv,
	}, topo.Env()...))
	testenv.WaitFor(t, 20*time.Second, "pay ready: database and broker connected with the password", func() bool {
		res, err := http.Get(p.BaseURL + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	if l := leaks(p.Output(), rawPassword, privateKeyText(t, keyDir, auth.IssuerPay)); len(l) > 0 {
		t.Errorf("output holds %q:\n%s", l, p.Output())
	}
}
