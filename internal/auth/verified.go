package auth

import (
	"sync"
	"time"
)

// maxVerified bounds how many tokens an Authenticator remembers as
// verified. Only a token that passed every check is remembered, so only a
// holder of a signing key can make new entries; the bound is for a busy
// day's users, not for an attacker.
const maxVerified = 10_000

// verifiedTokens remembers the tokens an Authenticator has verified, so
// that a client sending the same token again costs a map lookup rather
// than an EdDSA verification (tens of microseconds of CPU): a client that
// floods pay with refused requests would otherwise buy a signature check
// with each. A token's checks depend only on its bytes and the
// Authenticator's keys, which never change, except for time: its expiry
// and not-before are checked again at every use.
type verifiedTokens struct {
	mu     sync.Mutex
	tokens map[string]verifiedToken
}

type verifiedToken struct {
	principal          Principal
	notBefore, expires time.Time // notBefore zero: none
}

// valid reports whether t may be used at now, as the parser would judge
// its time claims: from its not-before on, until (not at) its expiry.
func (t verifiedToken) valid(now time.Time) bool {
	return !now.Before(t.notBefore) && now.Before(t.expires)
}

// lookup returns the principal of token if it was verified and is valid
// at now.
func (v *verifiedTokens) lookup(token string, now time.Time) (Principal, bool) {
	v.mu.Lock()
	t, ok := v.tokens[token]
	v.mu.Unlock()
	if !ok || !t.valid(now) {
		return Principal{}, false
	}
	return t.principal, true
}

// remember records token as verified. A full memory starts over: the
// tokens still in use come back with their next request.
func (v *verifiedTokens) remember(token string, t verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tokens == nil || len(v.tokens) >= maxVerified {
		v.tokens = make(map[string]verifiedToken)
	}
	v.tokens[token] = t
}

// size is how many tokens are remembered.
func (v *verifiedTokens) size() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.tokens)
}
