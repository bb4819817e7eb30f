// Package auth handles HS256 JWT bearer tokens: who is calling, a user or a service.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
)

// DevSecret is what the services and paytradectl sign with when
// AUTH_JWT_SECRET is unset, so a local setup works out of the box; they warn
// when they use it.
const DevSecret = "paytrade-dev-secret-change-me"

// The values of the role claim.
const (
	roleUser    = "user"
	roleService = "service"
)

// Principal is who a request comes from.
type Principal struct {
	UserID  int64  // the user's id; 0 for a service
	Service bool   // a service (trade calling pay, an operator), not a user
	Subject string // the token's sub: the decimal user id, or the service's name
}

// claims is what our tokens carry besides the registered ones.
type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Mint signs a token for p that is valid from now for ttl. A user token's
// subject is p.UserID in decimal (p.Subject is ignored); a service token's
// subject is p.Subject, which must be set.
func Mint(secret []byte, p Principal, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: empty secret")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %v is not positive", ttl)
	}
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	switch {
	case p.Service && p.UserID != 0:
		return "", fmt.Errorf("mint token: service %q cannot have user id %d", p.Subject, p.UserID)
	case p.Service && p.Subject == "":
		return "", errors.New("mint token: service needs a subject")
	case p.Service:
		c.Role, c.Subject = roleService, p.Subject
	case p.UserID <= 0:
		return "", fmt.Errorf("mint token: user id %d is not positive", p.UserID)
	default:
		c.Role, c.Subject = roleUser, strconv.FormatInt(p.UserID, 10)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return token, nil
}

// Authenticator checks tokens signed with one secret.
type Authenticator struct {
	secret []byte
	parser *jwt.Parser
}

// NewAuthenticator returns an Authenticator for tokens signed with secret.
func NewAuthenticator(secret []byte) *Authenticator {
	return &Authenticator{
		secret: append([]byte(nil), secret...),
		// Pinning HS256 is what stops a forged token from choosing "none"
		// or an asymmetric algorithm that would treat our secret as a
		// public key.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
		),
	}
}

// Parse checks token's signature (HS256 only) and expiry and returns who it
// speaks for. A user token whose sub is not a positive decimal int64 is invalid.
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
	switch c.Role {
	case roleService:
		if c.Subject == "" {
			return Principal{}, errors.New("parse token: service token without sub")
		}
		return Principal{Service: true, Subject: c.Subject}, nil
	case roleUser:
		id, err := strconv.ParseInt(c.Subject, 10, 64)
		// Only the canonical spelling: "+1" or "01" is not what Mint writes.
		if err != nil || id <= 0 || strconv.FormatInt(id, 10) != c.Subject {
			return Principal{}, fmt.Errorf("parse token: user token sub %q is not a positive user id", c.Subject)
		}
		return Principal{UserID: id, Subject: c.Subject}, nil
	}
	return Principal{}, fmt.Errorf("parse token: unknown role %q", c.Role)
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

// RequireService lets only services through: 403 for users, 401 when no
// Principal is in the context.
func RequireService(next http.Handler) http.Handler {
	return require(next, func(p Principal) bool { return p.Service }, "only services may do this")
}

// RequireUser lets only users through: 403 for services, 401 when no
// Principal is in the context.
func RequireUser(next http.Handler) http.Handler {
	return require(next, func(p Principal) bool { return !p.Service }, "only users may do this")
}

func require(next http.Handler, allowed func(Principal) bool, refusal string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			unauthorized(w, r, "missing bearer token")
			return
		}
		if !allowed(p) {
			jsonhttp.Error(w, r, nil, problem.New(problem.Forbidden, "forbidden", refusal))
			return
		}
		next.ServeHTTP(w, r)
	})
}
