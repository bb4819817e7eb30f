package deploy

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

const (
	prometheusConfig = "prometheus/prometheus.yml"
	dashboardFile    = "grafana/dashboards/paytrade.json"
	datasourceFile   = "grafana/provisioning/datasources/prometheus.yml"
)

// What the dashboard must show, by the metric behind it.
var dashboardMustShow = map[string]string{
	"payments":                    "paytrade_payments_total",
	"orders paid by the consumer": "paytrade_consumer_applied_total",
	"orders paid by the fallback": "paytrade_cron_orders_paid_total",
	"outbox pending":              "paytrade_outbox_pending",
	"outbox oldest age":           "paytrade_outbox_oldest_age_seconds",
	"consumer duplicates":         "paytrade_consumer_duplicates_total",
	"consumer parked":             "paytrade_consumer_parked_total",
	"pay to paid latency":         "paytrade_pay_to_paid_seconds_bucket",
	"broker reconnects":           "paytrade_broker_reconnects_total",
	"refunds credited":            "paytrade_refunds_credited_total",
	"refunds waiting":             "paytrade_refunds_waiting",
	"refunds by kind":             "paytrade_refunds_credited_by_kind_total",
	"refunded amount":             "paytrade_refunded_cents_total",
}

func TestPrometheusConfigPassesPromtoolAndScrapesWhereComposeRunsTheServices(t *testing.T) {
	promtool := promtool(t)
	if out, err := exec.Command(promtool, "check", "config", prometheusConfig).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config %s: %v\n%s", prometheusConfig, err, out)
	}

	config, err := os.ReadFile(prometheusConfig)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range regexp.MustCompile(`targets:\s*\[([^\]]*)\]`).FindAllStringSubmatch(string(config), -1) {
		for _, target := range strings.Split(m[1], ",") {
			targets = append(targets, strings.Trim(strings.TrimSpace(target), `"'`))
		}
	}
	// Where the compose file has each service listen: its *_HTTP_ADDR.
	listening := map[string]bool{}
	r := render(t, secrets(t, nil), nil, "dashboard")
	for name, svc := range r.Services {
		for key, addr := range svc.Environment {
			if strings.HasSuffix(key, "_HTTP_ADDR") {
				listening[name+addr] = true
			}
		}
	}
	if _, ok := r.Services["prometheus"]; !ok {
		t.Error("the dashboard profile has no prometheus service")
	}
	slices.Sort(targets)
	if !slices.Equal(targets, []string{"pay:8086", "trade:8085"}) {
		t.Errorf("%s scrapes %v, want pay:8086 and trade:8085", prometheusConfig, targets)
	}
	for _, target := range targets {
		if !listening[target] {
			t.Errorf("%s scrapes %s, where no compose service listens", prometheusConfig, target)
		}
	}
}

func TestDashboardQueriesOnlyMetricsTheRunningServicesExport(t *testing.T) {
	// The dashboard's metric names, and its data source.
	dashboard := readDashboard(t)
	provisioned, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	uid := regexp.MustCompile(`(?m)^\s*uid:\s*(\S+)`).FindSubmatch(provisioned)
	if uid == nil {
		t.Fatalf("%s provisions no data source uid", datasourceFile)
	}
	metricName := regexp.MustCompile(`\bpaytrade_[a-z_]+\b`)
	used := map[string][]string{} // metric → panels
	for _, p := range dashboard.Panels {
		if p.Datasource.UID != string(uid[1]) {
			t.Errorf("panel %q reads data source %q, want the provisioned %q", p.Title, p.Datasource.UID, uid[1])
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				used[name] = append(used[name], p.Title)
			}
		}
	}
	for what, name := range dashboardMustShow {
		if used[name] == nil {
			t.Errorf("no panel shows %s (%s)", what, name)
		}
	}

	// What the real binaries export, once a payment has gone through.
	s := systest.New(t, "dashboard")
	pay := s.StartPay(t, s.PayEnv())
	trade := s.StartTrade(t, s.TradeEnv(pay.BaseURL))
	svc := systest.Services{Pay: pay.BaseURL, Trade: trade.BaseURL}
	client := systest.NewClient(2, 10*time.Second)
	buyer := systest.UserToken(t, 1)
	if err := client.OpenWallet(svc.Pay, systest.OperatorToken(t, "dashboard"), 1, 10000); err != nil {
		t.Fatal(err)
	}
	orderID, payOrderID, err := client.Order(svc, buyer, 2500)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Pay(svc.Pay, buyer, payOrderID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the order paid", func() bool {
		var o struct{ Status int }
		return client.Call(http.MethodGet, svc.Trade+"/orders/"+strconv.FormatInt(orderID, 10), buyer, "", http.StatusOK, &o) == nil && o.Status == 2
	})
	exported := map[string]float64{}
	for _, base := range []string{svc.Pay, svc.Trade} {
		scrape(t, base+"/metrics", exported)
	}
	for name, panels := range used {
		if _, ok := exported[name]; !ok {
			t.Errorf("panels %q query %s, which neither pay nor trade exports", panels, name)
		}
	}
	if got := exported["paytrade_pay_to_paid_seconds_count"]; got != 1 {
		t.Errorf("paytrade_pay_to_paid_seconds_count = %v after one paid order, want 1", got)
	}
}

// dashboard is what the tests read of the provisioned dashboard.
type dashboard struct {
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr     string `json:"expr"`
			Exemplar bool   `json:"exemplar"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// scrape adds the sample names of the Prometheus text at url to names,
// each with the sum of its samples.
func scrape(t *testing.T, url string, names map[string]float64) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		value, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("GET %s: line %q: %v", url, line, err)
		}
		names[name] += value
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// promtool returns Prometheus's promtool: the one on the PATH, or the one
// scripts/install-tools.sh promtool unpacked into .tools/. Without either
// the test is skipped (testenv.Missing).
func promtool(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("promtool"); err == nil {
		return path
	}
	fetched := filepath.Join("..", ".tools", "prometheus", "usr", "bin", "promtool")
	if _, err := exec.LookPath(fetched); err != nil {
		testenv.Missing(t, "promtool, to check the dashboard's Prometheus configuration",
			"scripts/install-tools.sh promtool, or put promtool on the PATH")
	}
	return fetched
}

const (
	tempoConfig         = "tempo/tempo.yml"
	tempoDatasourceFile = "grafana/provisioning/datasources/tempo.yml"
)

// The dashboard profile's traces: pay and trade send them, over OTLP/HTTP,
// to the trace store the profile runs, where its configuration receives
// them; Grafana reads that store, and a latency's exemplar (the trace_id
// the services attach) opens its trace there.
func TestDashboardProfileTracesGoToTheStoreGrafanaReadsAndLatencyLinksToThem(t *testing.T) {
	store, err := os.ReadFile(tempoConfig)
	if err != nil {
		t.Fatal(err)
	}
	receiver := regexp.MustCompile(`(?s)otlp:.*?http:\s*\n\s*endpoint:\s*"?[^":\s]*:(\d+)`).FindSubmatch(store)
	query := regexp.MustCompile(`http_listen_port:\s*(\d+)`).FindSubmatch(store)
	if receiver == nil || query == nil {
		t.Fatalf("%s: want an OTLP/HTTP receiver endpoint and an http_listen_port", tempoConfig)
	}

	r := render(t, secrets(t, nil), map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, "dashboard")
	tempo, ok := r.Services["tempo"]
	if !ok || !slices.Contains(tempo.Profiles, "dashboard") {
		t.Fatal("the dashboard profile has no tempo service")
	}
	configured := false
	for _, v := range tempo.Volumes {
		configured = configured || strings.HasSuffix(v.Source, tempoConfig) && slices.Contains(tempo.Command, "-config.file="+v.Target)
	}
	if !configured {
		t.Errorf("tempo does not run with %s: command %q", tempoConfig, tempo.Command)
	}
	for _, name := range []string{"pay", "trade"} {
		env := r.Services[name].Environment
		if env["OTEL_TRACES_EXPORTER"] != "otlp" {
			t.Errorf("%s: OTEL_TRACES_EXPORTER = %q under make up's dashboard profile, want otlp", name, env["OTEL_TRACES_EXPORTER"])
		}
		if want := "http://tempo:" + string(receiver[1]); env["OTEL_EXPORTER_OTLP_ENDPOINT"] != want {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT = %q, want %s, where tempo receives OTLP/HTTP", name, env["OTEL_EXPORTER_OTLP_ENDPOINT"], want)
		}
	}
	if plain := render(t, secrets(t, nil), map[string]string{"OTEL_TRACES_EXPORTER": ""}, ""); plain.Services["pay"].Environment["OTEL_TRACES_EXPORTER"] != "none" {
		t.Errorf("without the dashboard profile pay's OTEL_TRACES_EXPORTER = %q, want none: there is no trace store to send to",
			plain.Services["pay"].Environment["OTEL_TRACES_EXPORTER"])
	}

	tempoSource, err := os.ReadFile(tempoDatasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	tempoUID := regexp.MustCompile(`(?m)^\s*uid:\s*(\S+)`).FindSubmatch(tempoSource)
	if tempoUID == nil || !regexp.MustCompile(`(?m)^\s*type:\s*tempo\s*$`).Match(tempoSource) {
		t.Fatalf("%s provisions no tempo data source with a uid", tempoDatasourceFile)
	}
	if want := "url: http://tempo:" + string(query[1]); !strings.Contains(string(tempoSource), want) {
		t.Errorf("%s: want %q, where tempo answers queries", tempoDatasourceFile, want)
	}
	prometheusSource, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	exemplars := regexp.MustCompile(`exemplarTraceIdDestinations:\s*\n\s*-\s*name:\s*(\S+)\s*\n\s*datasourceUid:\s*(\S+)`).FindSubmatch(prometheusSource)
	if exemplars == nil || string(exemplars[1]) != "trace_id" || string(exemplars[2]) != string(tempoUID[1]) {
		t.Errorf("%s: exemplars' trace_id must open in the tempo data source %q", datasourceFile, tempoUID[1])
	}
	if !slices.Contains(r.Services["prometheus"].Command, "--enable-feature=exemplar-storage") {
		t.Errorf("prometheus runs with %q: without exemplar storage it keeps no exemplar", r.Services["prometheus"].Command)
	}

	linked := false
	for _, p := range readDashboard(t).Panels {
		for _, target := range p.Targets {
			linked = linked || target.Exemplar && strings.Contains(target.Expr, "paytrade_http_request_duration_seconds_bucket")
		}
	}
	if !linked {
		t.Error("no panel shows the request latency with its exemplars, the links to traces")
	}
}
