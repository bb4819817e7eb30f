package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys is one key set for the package's tests; the tests that import
// authtest cannot be here, which it imports.
func testKeys(tb testing.TB) KeySet {
	tb.Helper()
	set, err := NewKeySet()
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func mint(tb testing.TB, s *Signer, p Principal, ttl time.Duration, now time.Time, audience ...string) string {
	tb.Helper()
	token, err := s.Mint(p, audience, ttl, now)
	if err != nil {
		tb.Fatalf("Mint(%+v): %v", p, err)
	}
	return token
}

// forge builds a token with any header and payload, signed with key
// whatever the header says: what an attacker holding one issuer's key would
// send to confuse the verifier.
func forge(tb testing.TB, key ed25519.PrivateKey, header, payload map[string]any) string {
	tb.Helper()
	enc := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatalf("marshal: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signing)))
}

func validPayload(iss, sub, role string, aud any) map[string]any {
	now := time.Now()
	return map[string]any{"iss": iss, "sub": sub, "aud": aud, "role": role, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// without returns payload less the named claims.
func without(payload map[string]any, names ...string) map[string]any {
	for _, n := range names {
		delete(payload, n)
	}
	return payload
}

// with returns payload with claim name set to v.
func with(payload map[string]any, name string, v any) map[string]any {
	payload[name] = v
	return payload
}

func TestMintParseRoundTrip(t *testing.T) {
	set := testKeys(t)
	tests := []struct {
		name     string
		issuer   string
		in       Principal
		audience string
		want     Principal
	}{
		{"user at pay", IssuerUsers, User(42), AudiencePay, Principal{UserID: 42, Role: RoleUser, Subject: "42"}},
		{"user at trade", IssuerUsers, User(42), AudienceTrade, Principal{UserID: 42, Role: RoleUser, Subject: "42"}},
		{"largest user id", IssuerUsers, User(9223372036854775807), AudiencePay, Principal{UserID: 9223372036854775807, Role: RoleUser, Subject: "9223372036854775807"}},
		{"trade's service token at pay", IssuerTrade, Service("trade"), AudiencePay, Principal{Role: RoleService, Subject: "trade"}},
		{"pay's service token at trade", IssuerPay, Service("pay"), AudienceTrade, Principal{Role: RoleService, Subject: "pay"}},
		{"operator at pay", IssuerOperator, Operator("ops"), AudiencePay, Principal{Role: RoleOperator, Subject: "ops"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAuthenticator(tt.audience, set.Public())
			got, err := a.Parse(mint(t, set[tt.issuer], tt.in, time.Hour, time.Now(), tt.audience))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMintRefusesWhatParseWouldRefuse(t *testing.T) {
	users := testKeys(t)[IssuerUsers]
	tests := []struct {
		name     string
		p        Principal
		ttl      time.Duration
		audience []string
	}{
		{"zero ttl", User(1), 0, []string{AudiencePay}},
		{"negative ttl", User(1), -time.Hour, []string{AudiencePay}},
		{"ttl beyond MaxTTL", User(1), MaxTTL + time.Second, []string{AudiencePay}},
		{"no audience", User(1), time.Hour, nil},
		{"empty audience", User(1), time.Hour, []string{""}},
		{"no role", Principal{UserID: 1, Subject: "1"}, time.Hour, []string{AudiencePay}},
		{"user id zero", User(0), time.Hour, []string{AudiencePay}},
		{"negative user id", User(-3), time.Hour, []string{AudiencePay}},
		{"user subject not its id", Principal{UserID: 7, Role: RoleUser, Subject: "8"}, time.Hour, []string{AudiencePay}},
		{"service without subject", Service(""), time.Hour, []string{AudiencePay}},
		{"service with user id", Principal{Role: RoleService, Subject: "trade", UserID: 1}, time.Hour, []string{AudiencePay}},
		{"operator without subject", Operator(""), time.Hour, []string{AudiencePay}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := users.Mint(tt.p, tt.audience, tt.ttl, time.Now()); err == nil {
				t.Errorf("Mint = %q, nil; want an error", token)
			}
		})
	}
}

func TestMayIssueOnlyTheRoleOfEachIssuer(t *testing.T) {
	tests := []struct {
		issuer   string
		role     Role
		audience string
		want     bool
	}{
		{IssuerUsers, RoleUser, AudiencePay, true},
		{IssuerUsers, RoleUser, AudienceTrade, true},
		{IssuerUsers, RoleService, AudiencePay, false},
		{IssuerUsers, RoleOperator, AudiencePay, false},
		{IssuerOperator, RoleOperator, AudiencePay, true},
		{IssuerOperator, RoleOperator, AudienceTrade, true},
		{IssuerOperator, RoleUser, AudiencePay, false},
		{IssuerOperator, RoleService, AudiencePay, false},
		{IssuerTrade, RoleService, AudiencePay, true},
		{IssuerTrade, RoleService, AudienceTrade, false},
		{IssuerTrade, RoleOperator, AudiencePay, false},
		{IssuerTrade, RoleUser, AudiencePay, false},
		{IssuerPay, RoleService, AudienceTrade, true},
		{IssuerPay, RoleService, AudiencePay, false},
		{IssuerPay, RoleOperator, AudienceTrade, false},
		{IssuerPay, RoleUser, AudienceTrade, false},
		{"someone", RoleUser, AudiencePay, false},
		{IssuerUsers, "admin", AudiencePay, false},
	}
	for _, tt := range tests {
		if got := MayIssue(tt.issuer, tt.role, tt.audience); got != tt.want {
			t.Errorf("MayIssue(%q, %q, %q) = %v, want %v", tt.issuer, tt.role, tt.audience, got, tt.want)
		}
	}
}

// The attack of a taken trade: its own key, and a claim to be anyone.
func TestTradesKeyCannotMintOperatorOrUserTokensPayAccepts(t *testing.T) {
	set := testKeys(t)
	pay := NewAuthenticator(AudiencePay, set.Public())
	trade := set[IssuerTrade]
	tradeKey := trade.key
	kid := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": trade.kid}
	tests := []struct {
		name  string
		token string
	}{
		{"operator", mint(t, trade, Operator("ops"), time.Hour, time.Now(), AudiencePay)},
		{"user", mint(t, trade, User(1), time.Hour, time.Now(), AudiencePay)},
		{"operator claiming the operator issuer", forge(t, tradeKey, kid, validPayload(IssuerOperator, "ops", "operator", AudiencePay))},
		{"user claiming the users' issuer", forge(t, tradeKey, kid, validPayload(IssuerUsers, "1", "user", AudiencePay))},
		{"operator under the operator key's kid", forge(t, tradeKey, map[string]any{"alg": "EdDSA", "kid": set[IssuerOperator].kid}, validPayload(IssuerOperator, "ops", "operator", AudiencePay))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := pay.Parse(tt.token); err == nil {
				t.Errorf("pay accepted %+v signed with trade's key", p)
			}
		})
	}
	// What trade's key may sign, pay still takes.
	if _, err := pay.Parse(mint(t, trade, Service("trade"), time.Hour, time.Now(), AudiencePay)); err != nil {
		t.Errorf("pay refused trade's service token: %v", err)
	}
}

func TestTokenForTradeIsRefusedByPay(t *testing.T) {
	set := testKeys(t)
	pay := NewAuthenticator(AudiencePay, set.Public())
	tests := []struct {
		name  string
		token string
	}{
		{"pay's service token for trade", mint(t, set[IssuerPay], Service("pay"), time.Hour, time.Now(), AudienceTrade)},
		{"a user token for trade", mint(t, set[IssuerUsers], User(1), time.Hour, time.Now(), AudienceTrade)},
		{"an operator token for trade", mint(t, set[IssuerOperator], Operator("ops"), time.Hour, time.Now(), AudienceTrade)},
		{"no aud", forge(t, set[IssuerUsers].key, map[string]any{"alg": "EdDSA", "kid": set[IssuerUsers].kid}, without(validPayload(IssuerUsers, "1", "user", ""), "aud"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := pay.Parse(tt.token); err == nil {
				t.Errorf("pay accepted %+v, a token for trade", p)
			}
		})
	}
}

func TestTokenWithUnknownKidIsRefused(t *testing.T) {
	set, other := testKeys(t), testKeys(t)
	pay := NewAuthenticator(AudiencePay, set.Public())
	payload := validPayload(IssuerUsers, "1", "user", AudiencePay)
	tests := []struct {
		name  string
		token string
	}{
		{"another key set's users key", mint(t, other[IssuerUsers], User(1), time.Hour, time.Now(), AudiencePay)},
		{"no kid", forge(t, set[IssuerUsers].key, map[string]any{"alg": "EdDSA"}, payload)},
		{"made-up kid", forge(t, set[IssuerUsers].key, map[string]any{"alg": "EdDSA", "kid": "users-made-up"}, payload)},
		{"kid not a string", forge(t, set[IssuerUsers].key, map[string]any{"alg": "EdDSA", "kid": 7}, payload)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pay.Parse(tt.token)
			if err == nil {
				t.Fatalf("pay accepted %+v", p)
			}
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Parse error = %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestParseRefusesBadTokens(t *testing.T) {
	now := time.Now()
	set := testKeys(t)
	users := set[IssuerUsers]
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(validPayload(IssuerUsers, "1", "user", AudiencePay))).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("sign none token: %v", err)
	}
	// HMAC keyed with the public key: the classic confusion of an
	// asymmetric verifier.
	hsToken := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(validPayload(IssuerUsers, "1", "user", AudiencePay)))
	hsToken.Header["kid"] = users.kid
	hs256, err := hsToken.SignedString([]byte(users.Public().Key))
	if err != nil {
		t.Fatalf("sign HS256 token: %v", err)
	}
	eddsa := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": users.kid}
	valid := mint(t, users, User(1), time.Hour, now, AudiencePay)
	forged := func(p map[string]any) string { return forge(t, users.key, eddsa, p) }
	payload := func(sub string) map[string]any { return validPayload(IssuerUsers, sub, "user", AudiencePay) }

	tests := []struct {
		name  string
		token string
	}{
		{"expired", mint(t, users, User(1), time.Hour, now.Add(-2*time.Hour), AudiencePay)},
		{"no iss", forged(without(payload("1"), "iss"))},
		{"another iss", forged(with(payload("1"), "iss", IssuerOperator))},
		{"lifetime beyond MaxTTL", forged(with(payload("1"), "exp", now.Add(MaxTTL+time.Hour).Unix()))},
		{"a year, iat in the future", forged(with(with(payload("1"), "iat", now.Add(365*24*time.Hour).Unix()), "exp", now.Add(366*24*time.Hour).Unix()))},
		{"alg none", noneToken},
		{"alg none header, EdDSA signature", forge(t, users.key, map[string]any{"alg": "none", "kid": users.kid}, payload("1"))},
		{"HS256 keyed with the public key", hs256},
		{"tampered payload", strings.Split(valid, ".")[0] + "." + strings.Split(forged(payload("2")), ".")[1] + "." + strings.Split(valid, ".")[2]},
		{"no exp", forged(without(payload("1"), "exp"))},
		{"sub zero", forged(payload("0"))},
		{"sub negative", forged(payload("-1"))},
		{"sub not a number", forged(payload("alice"))},
		{"sub leading zero", forged(payload("01"))},
		{"sub plus sign", forged(payload("+1"))},
		{"sub overflows int64", forged(payload("9223372036854775808"))},
		{"sub empty", forged(payload(""))},
		{"no role", forged(with(payload("1"), "role", ""))},
		{"unknown role", forged(with(payload("1"), "role", "admin"))},
		{"garbage", "not.a.token"},
		{"empty", ""},
	}
	a := NewAuthenticator(AudiencePay, set.Public())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := a.Parse(tt.token); err == nil {
				t.Errorf("Parse = %+v, nil; want an error", p)
			}
		})
	}
}

func TestParseWithoutKeysRefusesEverything(t *testing.T) {
	set := testKeys(t)
	token := mint(t, set[IssuerUsers], User(1), time.Hour, time.Now(), AudiencePay)
	if p, err := NewAuthenticator(AudiencePay, nil).Parse(token); err == nil {
		t.Errorf("Parse with no keys = %+v, nil; want an error", p)
	}
}

// serve runs h behind the given middleware and returns the recorded response
// and the principal the handler saw, if it was reached.
func serve(mw func(http.Handler) http.Handler, r *http.Request) (*httptest.ResponseRecorder, *Principal) {
	var seen *Principal
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			p = Principal{Subject: "no principal in context"}
		}
		seen = &p
		w.WriteHeader(http.StatusNoContent)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func errorCode(tb testing.TB, w *httptest.ResponseRecorder) string {
	tb.Helper()
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		tb.Fatalf("error body %q is not JSON: %v", w.Body.String(), err)
	}
	if body.Message == "" {
		tb.Errorf("error body %q has no message", w.Body.String())
	}
	return body.Code
}

func TestMiddleware(t *testing.T) {
	now := time.Now()
	set := testKeys(t)
	users := set[IssuerUsers]
	user := mint(t, users, User(5), time.Hour, now, AudiencePay)
	tests := []struct {
		name          string
		authorization string
		wantStatus    int
		wantPrincipal Principal
	}{
		{"valid", "Bearer " + user, http.StatusNoContent, User(5)},
		{"scheme case-insensitive", "bearer " + user, http.StatusNoContent, User(5)},
		{"missing header", "", http.StatusUnauthorized, Principal{}},
		{"no token", "Bearer ", http.StatusUnauthorized, Principal{}},
		{"basic auth", "Basic dXNlcjpwdw==", http.StatusUnauthorized, Principal{}},
		{"bare token", user, http.StatusUnauthorized, Principal{}},
		{"expired", "Bearer " + mint(t, users, User(5), time.Minute, now.Add(-time.Hour), AudiencePay), http.StatusUnauthorized, Principal{}},
		{"invalid", "Bearer " + user + "x", http.StatusUnauthorized, Principal{}},
	}
	a := NewAuthenticator(AudiencePay, set.Public())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/accounts/me", nil)
			if tt.authorization != "" {
				r.Header.Set("Authorization", tt.authorization)
			}
			w, seen := serve(a.Middleware, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body.String())
			}
			if tt.wantStatus != http.StatusNoContent {
				if seen != nil {
					t.Errorf("handler reached with %+v, want it not reached", *seen)
				}
				if got := errorCode(t, w); got != "unauthorized" {
					t.Errorf("code = %q, want unauthorized", got)
				}
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
				return
			}
			if seen == nil || *seen != tt.wantPrincipal {
				t.Errorf("handler saw %v, want %+v", seen, tt.wantPrincipal)
			}
		})
	}
}

func TestRequireLetsOnlyItsRolesThrough(t *testing.T) {
	user, service, operator := User(5), Service("trade"), Operator("ops")
	pay := Require(RoleService, RoleOperator)
	money := Require(RoleOperator)
	tests := []struct {
		name       string
		mw         func(http.Handler) http.Handler
		principal  *Principal
		wantStatus int
		wantCode   string
	}{
		{"service applies for a pay order", pay, &service, http.StatusNoContent, ""},
		{"operator applies for a pay order", pay, &operator, http.StatusNoContent, ""},
		{"user cannot apply", pay, &user, http.StatusForbidden, "forbidden"},
		{"nobody cannot apply", pay, nil, http.StatusUnauthorized, "unauthorized"},
		{"operator deposits", money, &operator, http.StatusNoContent, ""},
		{"service cannot deposit", money, &service, http.StatusForbidden, "forbidden"},
		{"user cannot deposit", money, &user, http.StatusForbidden, "forbidden"},
		{"user passes RequireUser", RequireUser, &user, http.StatusNoContent, ""},
		{"service refused by RequireUser", RequireUser, &service, http.StatusForbidden, "forbidden"},
		{"operator refused by RequireUser", RequireUser, &operator, http.StatusForbidden, "forbidden"},
		{"nobody refused by RequireUser", RequireUser, nil, http.StatusUnauthorized, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/accounts", nil)
			if tt.principal != nil {
				r = r.WithContext(WithPrincipal(r.Context(), *tt.principal))
			}
			w, seen := serve(tt.mw, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body.String())
			}
			if tt.wantCode == "" {
				if seen == nil || *seen != *tt.principal {
					t.Errorf("handler saw %v, want %+v", seen, *tt.principal)
				}
				return
			}
			if seen != nil {
				t.Errorf("handler reached with %+v, want it not reached", *seen)
			}
			if got := errorCode(t, w); got != tt.wantCode {
				t.Errorf("code = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestFromContextEmpty(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if p, ok := FromContext(r.Context()); ok {
		t.Errorf("FromContext of a bare context = %+v, true; want false", p)
	}
}
