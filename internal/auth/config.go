package auth

import (
	"errors"
	"fmt"

	"github.com/paytrade/paytrade/internal/config"
)

// ServiceKeys is what one service holds: its own private key, to sign the
// service tokens it sends the other service, and the public keys it checks
// every token against. No other private key.
type ServiceKeys struct {
	Signer        *Signer
	Authenticator *Authenticator
	Dev           bool // PAYTRADE_DEV=1: a laptop, where the published key set is accepted
}

// ReadServiceKeys reads the keys of service (IssuerPay or IssuerTrade, the
// audience of the tokens it accepts) from the key directory
// PAYTRADE_KEYS_DIR: its own service.key and jwks.json. It fails closed:
// outside development (PAYTRADE_DEV unset) no directory, or any key of the
// published development set, is a configuration error. In development an
// unset directory means the development set. No error shows a key.
func ReadServiceKeys(r *config.Reader, service string) ServiceKeys {
	dir, dev := readKeysDir(r)
	keys := ServiceKeys{Dev: dev}
	var public []PublicKey
	switch {
	case dir == "" && !dev:
		return keys
	case dir == "":
		set := DevKeySet()
		keys.Signer, public = set[service], set.Public()
	default:
		var err error
		if keys.Signer, err = LoadSigner(dir, service); err != nil {
			r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %w", err))
		}
		if public, err = LoadJWKS(dir); err != nil {
			r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %w", err))
		}
	}
	if !dev {
		if keys.Signer != nil && IsDevKey(keys.Signer.Public().Key) {
			r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %s is the published development key: make a key set with paytradectl keys, or set PAYTRADE_DEV=1 on a laptop", KeyFile(service)))
		}
		for _, k := range public {
			if IsDevKey(k.Key) {
				r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %s holds the published development key %q: make a key set with paytradectl keys, or set PAYTRADE_DEV=1 on a laptop", JWKSFile, k.KeyID))
			}
		}
	}
	keys.Authenticator = NewAuthenticator(service, public)
	return keys
}

// ReadSigner reads issuer's private key from PAYTRADE_KEYS_DIR, failing
// closed as ReadServiceKeys does; dev reports PAYTRADE_DEV=1.
func ReadSigner(r *config.Reader, issuer string) (signer *Signer, dev bool) {
	dir, dev := readKeysDir(r)
	switch {
	case dir == "" && !dev:
		return nil, false
	case dir == "":
		return DevKeySet()[issuer], true
	}
	signer, err := LoadSigner(dir, issuer)
	if err != nil {
		r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %w", err))
		return nil, dev
	}
	if !dev && IsDevKey(signer.Public().Key) {
		r.Fail(fmt.Errorf("PAYTRADE_KEYS_DIR: %s is the published development key: make a key set with paytradectl keys, or set PAYTRADE_DEV=1 on a laptop", KeyFile(issuer)))
	}
	return signer, dev
}

// readKeysDir reads PAYTRADE_KEYS_DIR and PAYTRADE_DEV, failing when
// neither is set.
func readKeysDir(r *config.Reader) (dir string, dev bool) {
	dev = r.Flag("PAYTRADE_DEV")
	dir = r.String("PAYTRADE_KEYS_DIR", "")
	if dir == "" && !dev {
		r.Fail(errors.New("PAYTRADE_KEYS_DIR is not set: make a key set with paytradectl keys, or set PAYTRADE_DEV=1 on a laptop"))
	}
	return dir, dev
}
