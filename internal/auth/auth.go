// Package auth handles HS256 JWT bearer tokens: who is calling — a user, a
// service (trade calling pay) or an operator — and what each may do.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// Issuer is the iss of every token: a token without it, or with another, is
// not ours even if it carries our signature.
const Issuer = "paytrade"

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

// Mint signs a token for p that is valid from now for ttl (at most MaxTTL).
func Mint(secret []byte, p Principal, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: empty secret")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("mint token: ttl %v is not within (0, %v]", ttl, MaxTTL)
	}
	if err := p.check(); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	c := claims{Role: p.Role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   p.Subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
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

// Authenticator checks tokens signed with one secret.
type Authenticator struct {
	secret []byte
	now    func() time.Time
	parser *jwt.Parser
}

// NewAuthenticator returns an Authenticator for tokens signed with secret.
func NewAuthenticator(secret []byte) *Authenticator {
	return newAuthenticator(secret, time.Now)
}

func newAuthenticator(secret []byte, now func() time.Time) *Authenticator {
	return &Authenticator{
		secret: append([]byte(nil), secret...),
		now:    now,
		// Pinning HS256 is what stops a forged token from choosing "none"
		// or an asymmetric algorithm that would treat our secret as a
		// public key.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(Issuer),
			jwt.WithTimeFunc(now),
		),
	}
}

// Parse checks token's signature (HS256 only), issuer, expiry and lifetime
// and returns who it speaks for.
func (a *Authenticator) Parse(token string) (Principal, error) {
	var c claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		if len(a.secret) == 0 {
			return nil, errors.New("no secret configured")
		}
		return a.secret, nil
	})
	if err != nil {
		return Principal{}, fmt.Errorf("parse token: %w", err)
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
