package auth

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestATokenIsVerifiedOnceAndItsTimeCheckedAtEveryUse sends the same token
// again and again, as a client does (and as one flooding pay does): its
// signature is checked once, but it dies at its expiry all the same, and
// a copy with another signature is not taken for it.
func TestATokenIsVerifiedOnceAndItsTimeCheckedAtEveryUse(t *testing.T) {
	set := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	a := newAuthenticator(AudiencePay, set.Public(), func() time.Time { return now })
	token := mint(t, set[IssuerUsers], User(42), time.Hour, now, AudiencePay)
	for range 3 {
		p, err := a.Parse(token)
		if err != nil || p != User(42) {
			t.Fatalf("Parse = %+v, %v; want user 42", p, err)
		}
	}
	if n := a.verifications.Load(); n != 1 {
		t.Errorf("%d signatures checked for one token sent 3 times, want 1", n)
	}

	forged := token[:len(token)-2] + "AA"
	if forged == token {
		forged = token[:len(token)-2] + "BB"
	}
	if _, err := a.Parse(forged); err == nil {
		t.Error("a copy of a verified token with another signature was accepted")
	}

	now = now.Add(time.Hour)
	if _, err := a.Parse(token); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("Parse at the token's expiry = %v, want %v", err, jwt.ErrTokenExpired)
	}
}

// TestVerifiedTokensAreBounded remembers more tokens than the bound: the
// memory never holds more than maxVerified, and the newest is kept.
func TestVerifiedTokensAreBounded(t *testing.T) {
	var v verifiedTokens
	now := time.Now()
	for i := range maxVerified + 10 {
		v.remember(strconv.Itoa(i), verifiedToken{principal: User(int64(i) + 1), expires: now.Add(time.Hour)})
		if v.size() > maxVerified {
			t.Fatalf("%d tokens remembered, want at most %d", v.size(), maxVerified)
		}
	}
	if _, ok := v.lookup(strconv.Itoa(maxVerified+9), now); !ok {
		t.Error("the newest token was forgotten")
	}
}
