package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// deposit asks pay to add amount to user's wallet with token and returns
// the status it answered.
func deposit(t *testing.T, payURL, token string, user int64, key string) int {
	t.Helper()
	code, _, err := client.Send(t.Context(), http.MethodPost, payURL+"/accounts/"+strconv.FormatInt(user, 10)+"/deposits", token,
		`{"amount":1000000}`, http.Header{"Idempotency-Key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// The attack of a taken trade: its private key signs anything, and pay must
// believe none of it but a service token.
func TestTradesKeyCannotMintOperatorOrUserTokensPayAccepts(t *testing.T) {
	s := newSystem(t)
	keys := s.Keys
	buyer := s.newBuyer(t, 1, 500)
	tradeKey := auth.IssuerTrade
	tests := []struct {
		name  string
		token string
	}{
		{"operator token signed by trade", keys.Mint(t, tradeKey, auth.Operator("ops"), auth.AudiencePay)},
		{"user token signed by trade", keys.Mint(t, tradeKey, auth.User(1), auth.AudiencePay)},
		{"user token signed by pay", keys.Mint(t, auth.IssuerPay, auth.User(1), auth.AudiencePay)},
		{"operator token signed by the users' key", keys.Mint(t, auth.IssuerUsers, auth.Operator("ops"), auth.AudiencePay)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := deposit(t, s.pay.BaseURL, tt.token, buyer.id, "attack-"+tt.name); code != http.StatusUnauthorized {
				t.Errorf("deposit = %d, want 401", code)
			}
			code, _, err := client.Send(t.Context(), http.MethodGet, s.pay.BaseURL+"/accounts/me", tt.token, "", nil)
			if err != nil || code != http.StatusUnauthorized {
				t.Errorf("GET /accounts/me = %d %v, want 401", code, err)
			}
		})
	}
	var account struct{ Balance int64 }
	client.MustCall(t, http.MethodGet, s.pay.BaseURL+"/accounts/me", buyer.tok, "", http.StatusOK, &account)
	if account.Balance != 500 {
		t.Errorf("balance after the attacks = %d, want the 500 it was opened with", account.Balance)
	}
	// The operator key still deposits: the refusals are the keys', not the route's.
	if code := deposit(t, s.pay.BaseURL, keys.Operator(t, "ops"), buyer.id, "operator"); code != http.StatusOK && code != http.StatusCreated {
		t.Errorf("the operator's deposit = %d, want it taken", code)
	}
}

func TestTokenForTradeIsRefusedByPay(t *testing.T) {
	s := newSystem(t)
	trade := s.startTrade(t)
	keys := s.Keys
	forTrade := map[string]string{
		"pay's service token for trade": keys.Service(t, auth.AudienceTrade),
		"a user token for trade":        keys.Mint(t, auth.IssuerUsers, auth.User(1), auth.AudienceTrade),
		"an operator token for trade":   keys.Mint(t, auth.IssuerOperator, auth.Operator("ops"), auth.AudienceTrade),
	}
	for name, tok := range forTrade {
		t.Run(name, func(t *testing.T) {
			code, _, err := client.Send(t.Context(), http.MethodPost, s.pay.BaseURL+"/pay-orders/biz/query", tok, `{"bizOrderNos":[1]}`, nil)
			if err != nil || code != http.StatusUnauthorized {
				t.Errorf("pay answered %d %v, want 401", code, err)
			}
		})
	}
	// trade takes its own: a user token for trade lists the user's orders.
	code, _, err := client.Send(t.Context(), http.MethodGet, trade.BaseURL+"/orders", forTrade["a user token for trade"], "", nil)
	if err != nil || code != http.StatusOK {
		t.Errorf("trade answered its own user token %d %v, want 200", code, err)
	}
	// and refuses trade's service token, which is for pay.
	code, _, err = client.Send(t.Context(), http.MethodGet, trade.BaseURL+"/orders/1", keys.Service(t, auth.AudiencePay), "", nil)
	if err != nil || code != http.StatusUnauthorized {
		t.Errorf("trade answered a service token for pay %d %v, want 401", code, err)
	}
}

func TestTokenWithUnknownKidIsRefused(t *testing.T) {
	s := newSystem(t)
	other := authtest.New(t)
	operator := authtest.Claims(auth.IssuerOperator, auth.Operator("ops"), auth.AudiencePay)
	for name, tok := range map[string]string{
		"another key set's operator": other.Operator(t, "ops"),
		"another key set's trade":    other.Service(t, auth.AudiencePay),
		// The real operator key, under a kid pay does not hold: a verifier
		// that tried every key would take these.
		"the operator key, no kid":      s.Keys.Forge(t, auth.IssuerOperator, map[string]any{"alg": "EdDSA", "typ": "JWT"}, operator),
		"the operator key, made-up kid": s.Keys.Forge(t, auth.IssuerOperator, map[string]any{"alg": "EdDSA", "kid": "operator-rotated"}, operator),
	} {
		t.Run(name, func(t *testing.T) {
			if code := deposit(t, s.pay.BaseURL, tok, 1, "unknown-"+name); code != http.StatusUnauthorized {
				t.Errorf("deposit = %d, want 401", code)
			}
		})
	}
}

// A development key is anyone's: a process that accepts one must not be
// reachable from another host.
func TestDevelopmentModeListensOnLoopbackOnly(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	topo := testenv.NewTopology(t, amqpURL)
	for _, b := range binaries {
		bin := testenv.Build(t, b.pkg)
		name := b.pkg[strings.LastIndex(b.pkg, "/")+1:]
		addrEnv := strings.ToUpper(name) + "_HTTP_ADDR"
		base := append([]string{b.dbEnv + "=" + testenv.NewEmptyDatabase(t, "devbind_"+name), "AMQP_URL=" + amqpURL,
			"PAYTRADE_DEV=1"}, topo.Env()...)
		t.Run(name+"/every interface asked for", func(t *testing.T) {
			p := testenv.StartProcess(t, bin, name, append(base, addrEnv+"=:0"))
			if !strings.HasPrefix(p.BaseURL, "http://127.0.0.1:") {
				t.Errorf("listening at %s, want 127.0.0.1 only", p.BaseURL)
			}
			p.Stop(t, 10*time.Second)
		})
		t.Run(name+"/a public address asked for", func(t *testing.T) {
			out, err := testenv.RunUntilExit(t, bin, append(base, addrEnv+"=0.0.0.0:0"), 20*time.Second)
			if err == nil || strings.Contains(out, "listening") || !strings.Contains(out, addrEnv) {
				t.Errorf("exit %v; want a refusal naming %s before listening\n%s", err, addrEnv, out)
			}
		})
	}
}
