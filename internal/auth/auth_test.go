package auth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "test-secret"

func mint(tb testing.TB, p Principal, ttl time.Duration, now time.Time) string {
	tb.Helper()
	token, err := Mint([]byte(testSecret), p, ttl, now)
	if err != nil {
		tb.Fatalf("Mint(%+v): %v", p, err)
	}
	return token
}

// forge builds a token with any header and payload, signed with HMAC-SHA256
// over testSecret whatever the header says: what an attacker who guessed
// nothing but wanted to confuse the verifier would send.
func forge(tb testing.TB, header, payload map[string]any) string {
	tb.Helper()
	enc := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatalf("marshal: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func validPayload(sub, role string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": Issuer, "sub": sub, "role": role, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
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
	tests := []struct {
		name string
		in   Principal
		want Principal
	}{
		{"user", User(42), Principal{UserID: 42, Role: RoleUser, Subject: "42"}},
		{"largest user id", User(9223372036854775807), Principal{UserID: 9223372036854775807, Role: RoleUser, Subject: "9223372036854775807"}},
		{"service", Service("trade"), Principal{Role: RoleService, Subject: "trade"}},
		{"operator", Operator("ops"), Principal{Role: RoleOperator, Subject: "ops"}},
	}
	a := NewAuthenticator([]byte(testSecret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Parse(mint(t, tt.in, time.Hour, time.Now()))
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
	tests := []struct {
		name   string
		secret string
		p      Principal
		ttl    time.Duration
	}{
		{"empty secret", "", User(1), time.Hour},
		{"zero ttl", testSecret, User(1), 0},
		{"negative ttl", testSecret, User(1), -time.Hour},
		{"ttl beyond MaxTTL", testSecret, User(1), MaxTTL + time.Second},
		{"no role", testSecret, Principal{UserID: 1, Subject: "1"}, time.Hour},
		{"user id zero", testSecret, User(0), time.Hour},
		{"negative user id", testSecret, User(-3), time.Hour},
		{"user subject not its id", testSecret, Principal{UserID: 7, Role: RoleUser, Subject: "8"}, time.Hour},
		{"service without subject", testSecret, Service(""), time.Hour},
		{"service with user id", testSecret, Principal{Role: RoleService, Subject: "trade", UserID: 1}, time.Hour},
		{"operator without subject", testSecret, Operator(""), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := Mint([]byte(tt.secret), tt.p, tt.ttl, time.Now()); err == nil {
				t.Errorf("Mint = %q, nil; want an error", token)
			}
		})
	}
}

func TestParseRefusesBadTokens(t *testing.T) {
	now := time.Now()
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(validPayload("1", "user"))).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("sign none token: %v", err)
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(validPayload("1", "user"))).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatalf("sign HS512 token: %v", err)
	}
	otherSecret, err := Mint([]byte("other-secret"), User(1), time.Hour, now)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}
	noExp := validPayload("1", "user")
	delete(noExp, "exp")
	valid := mint(t, User(1), time.Hour, now)

	tests := []struct {
		name  string
		token string
	}{
		{"expired", mint(t, User(1), time.Hour, now.Add(-2*time.Hour))},
		{"no iss", forge(t, hs256, without(validPayload("1", "user"), "iss"))},
		{"another iss", forge(t, hs256, with(validPayload("1", "user"), "iss", "someone-else"))},
		{"lifetime beyond MaxTTL", forge(t, hs256, with(validPayload("1", "operator"), "exp", now.Add(MaxTTL+time.Hour).Unix()))},
		{"a year, iat in the future", forge(t, hs256, with(with(validPayload("ops", "operator"), "iat", now.Add(365*24*time.Hour).Unix()), "exp", now.Add(366*24*time.Hour).Unix()))},
		{"wrong secret", otherSecret},
		{"alg none", noneToken},
		{"alg none header, HMAC signature", forge(t, map[string]any{"alg": "none"}, validPayload("1", "user"))},
		{"RS256 header", forge(t, map[string]any{"alg": "RS256", "typ": "JWT"}, validPayload("1", "user"))},
		{"HS512", hs512},
		{"tampered payload", strings.Split(valid, ".")[0] + "." + strings.Split(forge(t, hs256, validPayload("2", "user")), ".")[1] + "." + strings.Split(valid, ".")[2]},
		{"no exp", forge(t, hs256, noExp)},
		{"sub zero", forge(t, hs256, validPayload("0", "user"))},
		{"sub negative", forge(t, hs256, validPayload("-1", "user"))},
		{"sub not a number", forge(t, hs256, validPayload("alice", "user"))},
		{"sub leading zero", forge(t, hs256, validPayload("01", "user"))},
		{"sub plus sign", forge(t, hs256, validPayload("+1", "user"))},
		{"sub overflows int64", forge(t, hs256, validPayload("9223372036854775808", "user"))},
		{"sub empty", forge(t, hs256, validPayload("", "user"))},
		{"service without sub", forge(t, hs256, validPayload("", "service"))},
		{"operator without sub", forge(t, hs256, validPayload("", "operator"))},
		{"no role", forge(t, hs256, validPayload("1", ""))},
		{"unknown role", forge(t, hs256, validPayload("1", "admin"))},
		{"garbage", "not.a.token"},
		{"empty", ""},
	}
	a := NewAuthenticator([]byte(testSecret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := a.Parse(tt.token); err == nil {
				t.Errorf("Parse = %+v, nil; want an error", p)
			}
		})
	}
}

func TestParseWithoutSecretRefusesEverything(t *testing.T) {
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(validPayload("1", "user"))).SignedString([]byte{})
	if err != nil {
		t.Skipf("jwt refuses to sign with an empty key: %v", err)
	}
	if p, err := NewAuthenticator(nil).Parse(token); err == nil {
		t.Errorf("Parse with no secret = %+v, nil; want an error", p)
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
	user := mint(t, User(5), time.Hour, now)
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
		{"expired", "Bearer " + mint(t, User(5), time.Minute, now.Add(-time.Hour)), http.StatusUnauthorized, Principal{}},
		{"invalid", "Bearer " + user + "x", http.StatusUnauthorized, Principal{}},
	}
	a := NewAuthenticator([]byte(testSecret))
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
