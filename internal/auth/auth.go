// Package auth handles EdDSA (Ed25519) JWT bearer tokens: who is calling —
// a user, a service (trade calling pay, pay calling trade) or an operator —
// which key signed for it, and what each may do. Every issuer signs with a
// key of its own; a service holds its own private key and the public keys
// of a JWKS document, and believes a role only from the issuer allowed to
// sign it, in a token addressed to it.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// algEdDSA is the only signature algorithm a token may name.
const algEdDSA = "EdDSA"

// MaxTTL bounds a token's lifetime: Mint refuses longer and the verifier
// refuses a token that expires later than MaxTTL from now, so a stolen token
// dies within a day whatever its maker asked for.
const MaxTTL = 24 * time.Hour

// clockSkew is how far the verifier lets another host's clock run ahead.
const clockSkew = time.Minute

// Role is what a token's bearer is.
type Role string

// The roles. A service may create, read and close pay orders — nothing that
// creates money; an operator may do everything, accounts and deposits
// included.
const (
	RoleUser     Role = "user"
	RoleService  Role = "service"
	RoleOperator Role = "operator"
)

// Principal is who a request comes from.
type Principal struct {
	UserID  int64  // the user's id; 0 for a service or an operator
	Role    Role   // what the bearer is
	Subject string // the token's sub: the decimal user id, or the service's or operator's name
}

// User is the principal of user id.
func User(id int64) Principal {
	return Principal{UserID: id, Role: RoleUser, Subject: strconv.FormatInt(id, 10)}
}

// Service is the principal of the service called name.
func Service(name string) Principal { return Principal{Role: RoleService, Subject: name} }

// Operator is the principal of the operator called name.
func Operator(name string) Principal { return Principal{Role: RoleOperator, Subject: name} }

// IsUser reports whether p is a user, not a service or an operator.
func (p Principal) IsUser() bool { return p.Role == RoleUser }

// claims is what our tokens carry besides the registered ones.
type claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// Mint signs a token for p, addressed to audience (one service or more),
// valid from now for ttl (at most MaxTTL). It signs any role: which issuer
// may sign which role is the verifier's to decide.
func (s *Signer) Mint(p Principal, audience []string, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("mint token: ttl %v is not within (0, %v]", ttl, MaxTTL)
	}
	if len(audience) == 0 || slices.Contains(audience, "") {
		return "", fmt.Errorf("mint token: audience %q names no service", audience)
	}
	if err := p.check(); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	c := claims{Role: p.Role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    s.issuer,
		Subject:   p.Subject,
		Audience:  jwt.ClaimStrings(audience),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.kid
	token, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return token, nil
}

// check says why p cannot be a token's principal, or nil.
func (p Principal) check() error {
	switch p.Role {
	case RoleUser:
		// Only the canonical spelling: "+1" or "01" is not what User writes.
		if p.UserID <= 0 || strconv.FormatInt(p.UserID, 10) != p.Subject {
			return fmt.Errorf("user sub %q is not a positive user id", p.Subject)
		}
	case RoleService, RoleOperator:
		if p.UserID != 0 {
			return fmt.Errorf("%s %q cannot have user id %d", p.Role, p.Subject, p.UserID)
		}
		if p.Subject == "" {
			return fmt.Errorf("%s needs a sub", p.Role)
		}
	default:
		return fmt.Errorf("unknown role %q", p.Role)
	}
	return nil
}

// Why a verifier refuses a token it could otherwise read.
var (
	ErrUnknownKey = errors.New("no public key has the token's kid")
	ErrNotAllowed = errors.New("the token's issuer may not sign its role for this service")
)

// Authenticator checks the tokens addressed to one service against the
// public keys it holds.
type Authenticator struct {
	audience string
	keys     map[string]PublicKey
	now      func() time.Time
	parser   *jwt.Parser
	verified verifiedTokens
	// verifications counts the signatures checked: the tokens seen for
	// the first time (or again once forgotten).
	verifications atomic.Int64
}

// NewAuthenticator returns the Authenticator of the service audience
// (AudiencePay, AudienceTrade), believing tokens signed by keys.
func NewAuthenticator(audience string, keys []PublicKey) *Authenticator {
	return newAuthenticator(audience, keys, time.Now)
}

func newAuthenticator(audience string, keys []PublicKey, now func() time.Time) *Authenticator {
	byID := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		byID[k.KeyID] = k
	}
	return &Authenticator{
		audience: audience,
		keys:     byID,
		now:      now,
		// Pinning EdDSA is what stops a forged token from choosing "none",
		// or HMAC with a public key as its secret.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{algEdDSA}),
			jwt.WithExpirationRequired(),
			jwt.WithAudience(audience),
			jwt.WithTimeFunc(now),
		),
	}
}

// Parse checks token's signature (EdDSA, by the key its kid names), its
// issuer (the key's), its audience (this service), its expiry and lifetime,
// and that its issuer may sign its role here; it returns who it speaks for.
//
// A token verified before is taken from memory, its time claims checked
// again.
func (a *Authenticator) Parse(token string) (Principal, error) {
	if p, ok := a.verified.lookup(token, a.now()); ok {
		return p, nil
	}
	var c claims
	var key PublicKey
	_, err := a.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		a.verifications.Add(1)
		kid, _ := t.Header["kid"].(string)
		k, ok := a.keys[kid]
		if !ok {
			return nil, ErrUnknownKey
		}
		key = k
		return k.Key, nil
	})
	if err != nil {
		return Principal{}, fmt.Errorf("parse token: %w", err)
	}
	if c.Issuer != key.Issuer {
		return Principal{}, fmt.Errorf("parse token: iss %q signed with %s's key", c.Issuer, key.Issuer)
	}
	if !MayIssue(key.Issuer, c.Role, a.audience) {
		return Principal{}, fmt.Errorf("parse token: %w: %s signed a %q token for %s", ErrNotAllowed, key.Issuer, c.Role, a.audience)
	}
	if c.ExpiresAt.After(a.now().Add(MaxTTL + clockSkew)) {
		return Principal{}, fmt.Errorf("parse token: it expires at %v, more than %v from now", c.ExpiresAt.Time, MaxTTL)
	}
	p := Principal{Role: c.Role, Subject: c.Subject}
	if c.Role == RoleUser {
		p.UserID, _ = strconv.ParseInt(c.Subject, 10, 64)
	}
	if err := p.check(); err != nil {
		return Principal{}, fmt.Errorf("parse token: %w", err)
	}
	verified := verifiedToken{principal: p, expires: c.ExpiresAt.Time}
	if c.NotBefore != nil {
		verified.notBefore = c.NotBefore.Time
	}
	a.verified.remember(token, verified)
	return p, nil
}

// Middleware lets a request through only with a valid
// "Authorization: Bearer <token>" and puts its Principal in the context;
// otherwise it answers 401.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			unauthorized(w, r, "missing bearer token")
			return
		}
		p, err := a.Parse(token)
		if errors.Is(err, jwt.ErrTokenExpired) {
			unauthorized(w, r, "token expired")
			return
		}
		if err != nil {
			unauthorized(w, r, "invalid token")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// unauthorized answers 401 with a reason short enough not to help a forger.
func unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="paytrade"`)
	jsonhttp.Error(w, r, nil, problem.New(problem.Unauthorized, "unauthorized", reason))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal that Middleware or WithPrincipal put in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Require lets through only the given roles: 403 for any other, 401 when
// no Principal is in the context.
func Require(roles ...Role) func(http.Handler) http.Handler {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r) + "s"
	}
	refusal := "only " + strings.Join(names, " or ") + " may do this"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := FromContext(r.Context())
			if !ok {
				unauthorized(w, r, "missing bearer token")
				return
			}
			if !slices.Contains(roles, p.Role) {
				jsonhttp.Error(w, r, nil, problem.New(problem.Forbidden, "forbidden", refusal))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireUser lets only users through.
func RequireUser(next http.Handler) http.Handler { return Require(RoleUser)(next) }
