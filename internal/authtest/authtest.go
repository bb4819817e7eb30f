// Package authtest mints the tokens tests send: every test that needs a
// bearer token, a key directory for a binary or a service's Authenticator
// gets it here, from a key set of its own, signed exactly as the real
// issuers sign.
package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
)

// Lifetime is every token's; it outlasts the longest run (make chaos,
// make bench).
const Lifetime = 2 * time.Hour

// Keys is one key set and the tokens it signs.
type Keys struct {
	Set     auth.KeySet
	private map[string]ed25519.PrivateKey // nil for Dev
}

// New makes a fresh key set for tb.
func New(tb testing.TB) *Keys {
	tb.Helper()
	k, err := generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// generate makes a key set and keeps its private keys, for Forge.
func generate() (*Keys, error) {
	k := &Keys{Set: auth.KeySet{}, private: map[string]ed25519.PrivateKey{}}
	for _, iss := range auth.Issuers() {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		k.Set[iss], k.private[iss] = auth.NewSigner(iss, key), key
	}
	return k, nil
}

// shared is the key set of Shared.
var shared = sync.OnceValues(generate)

// Shared is one key set for the whole test binary: what the system
// harness's binaries and the tokens sent to them share.
func Shared(tb testing.TB) *Keys {
	tb.Helper()
	k, err := shared()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Dev is the published development key set, which a service accepts only
// under PAYTRADE_DEV=1.
func Dev() *Keys { return &Keys{Set: auth.DevKeySet()} }

// Mint is a token of p for audience, signed with issuer's key: any
// combination, for the tests that check which ones a service refuses.
func (k *Keys) Mint(tb testing.TB, issuer string, p auth.Principal, audience ...string) string {
	tb.Helper()
	s, ok := k.Set[issuer]
	if !ok {
		tb.Fatalf("authtest: no key of issuer %q", issuer)
	}
	tok, err := s.Mint(p, audience, Lifetime, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Forge is a token of header and claims as given, signed with issuer's
// private key whatever they say: what a holder of that key could send.
func (k *Keys) Forge(tb testing.TB, issuer string, header, claims map[string]any) string {
	tb.Helper()
	key, ok := k.private[issuer]
	if !ok {
		tb.Fatalf("authtest: cannot forge with %q of this key set", issuer)
	}
	enc := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signing)))
}

// Claims are a valid token's claims of p from issuer for audience, to
// change before Forge.
func Claims(issuer string, p auth.Principal, audience ...string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": issuer, "sub": p.Subject, "role": string(p.Role), "aud": audience,
		"iat": now.Unix(), "exp": now.Add(Lifetime).Unix()}
}

// User is user id's token for both services, from the users' issuer.
func (k *Keys) User(tb testing.TB, id int64) string {
	tb.Helper()
	return k.Mint(tb, auth.IssuerUsers, auth.User(id), auth.AudiencePay, auth.AudienceTrade)
}

// Operator is the token of an operator named subject, from the operator
// key: what opens wallets and deposits, which no service token can.
func (k *Keys) Operator(tb testing.TB, subject string) string {
	tb.Helper()
	return k.Mint(tb, auth.IssuerOperator, auth.Operator(subject), auth.AudiencePay, auth.AudienceTrade)
}

// Service is the service token for audience, signed by the other service:
// trade's for pay, pay's for trade.
func (k *Keys) Service(tb testing.TB, audience string) string {
	tb.Helper()
	issuer := auth.IssuerTrade
	if audience == auth.AudienceTrade {
		issuer = auth.IssuerPay
	}
	return k.Mint(tb, issuer, auth.Service(issuer), audience)
}

// Signer is issuer's private key, for a client that mints its own tokens
// (trade's pay client).
func (k *Keys) Signer(issuer string) *auth.Signer { return k.Set[issuer] }

// Authenticator is what the service audience checks tokens with: every
// public key of the set.
func (k *Keys) Authenticator(audience string) *auth.Authenticator {
	return auth.NewAuthenticator(audience, k.Set.Public())
}

// Dir is a new key directory holding what service holds in production
// and nothing more: its own private key and jwks.json.
func (k *Keys) Dir(tb testing.TB, service string) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := auth.WritePrivateKey(dir, k.Set[service]); err != nil {
		tb.Fatal(err)
	}
	if err := auth.WriteJWKS(dir, k.Set.Public()); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Env is the environment entry that gives a service binary its key
// directory (Dir).
func (k *Keys) Env(tb testing.TB, service string) string {
	tb.Helper()
	return "PAYTRADE_KEYS_DIR=" + k.Dir(tb, service)
}
