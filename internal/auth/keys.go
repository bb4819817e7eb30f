package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The issuers: each signs with a key of its own, and a verifier believes a
// role only from the issuer allowed to sign it (MayIssue).
const (
	IssuerUsers    = "users"    // the users' issuer: user tokens
	IssuerOperator = "operator" // the operator key: operator tokens
	IssuerTrade    = "trade"    // trade: service tokens for pay
	IssuerPay      = "pay"      // pay: service tokens for trade
)

// The audiences: the services a token can be for.
const (
	AudiencePay   = "pay"
	AudienceTrade = "trade"
)

// Issuers lists every issuer of a key set, in the order paytradectl keys
// writes them.
func Issuers() []string {
	return []string{IssuerUsers, IssuerOperator, IssuerTrade, IssuerPay}
}

// MayIssue reports whether issuer may sign a token of role for audience:
// users only from the users' issuer, operators only from the operator key,
// and a service token only from the other service, so that a service's own
// key cannot speak to itself and nobody's key but the operator's makes an
// operator.
func MayIssue(issuer string, role Role, audience string) bool {
	switch role {
	case RoleUser:
		return issuer == IssuerUsers
	case RoleOperator:
		return issuer == IssuerOperator
	case RoleService:
		return issuer == IssuerTrade && audience == AudiencePay ||
			issuer == IssuerPay && audience == AudienceTrade
	}
	return false
}

// PublicKey is one issuer's verification key, as a JWKS document holds it.
type PublicKey struct {
	Issuer string
	KeyID  string // kid: the issuer and the key's RFC 7638 thumbprint
	Key    ed25519.PublicKey
}

// KeyID is the kid of issuer's key pub: "issuer-" and the start of the
// key's JWK thumbprint (RFC 7638), so a new key gets a new kid.
func KeyID(issuer string, pub ed25519.PublicKey) string {
	// The thumbprint hashes the required members in lexical order.
	thumb := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return issuer + "-" + base64.RawURLEncoding.EncodeToString(thumb[:12])
}

// Signer mints tokens with one issuer's private key.
type Signer struct {
	issuer string
	kid    string
	key    ed25519.PrivateKey
}

// NewSigner returns the Signer of issuer holding key.
func NewSigner(issuer string, key ed25519.PrivateKey) *Signer {
	return &Signer{issuer: issuer, kid: KeyID(issuer, key.Public().(ed25519.PublicKey)), key: key}
}

// Issuer is the iss of the tokens s mints.
func (s *Signer) Issuer() string { return s.issuer }

// Public is s's verification key.
func (s *Signer) Public() PublicKey {
	return PublicKey{Issuer: s.issuer, KeyID: s.kid, Key: s.key.Public().(ed25519.PublicKey)}
}

// DeriveSecret is a 32-byte secret for purpose that only the holder of s's
// private key can compute, so a service needs no second secret for keyed
// hashes of its own.
func (s *Signer) DeriveSecret(purpose string) []byte {
	mac := hmac.New(sha256.New, s.key.Seed())
	mac.Write([]byte("paytrade derived secret\x00" + purpose))
	return mac.Sum(nil)
}

// KeySet is the private key of every issuer: what paytradectl keys makes.
type KeySet map[string]*Signer

// GenerateKeySet makes a fresh key of every issuer from random.
func GenerateKeySet(random io.Reader) (KeySet, error) {
	set := KeySet{}
	for _, iss := range Issuers() {
		_, key, err := ed25519.GenerateKey(random)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", iss, err)
		}
		set[iss] = NewSigner(iss, key)
	}
	return set, nil
}

// NewKeySet is GenerateKeySet from the system's random source.
func NewKeySet() (KeySet, error) { return GenerateKeySet(rand.Reader) }

// DevKeySet is the published development key set: every key is derived
// from its issuer's name, so anyone can mint any token with it. A process
// uses it only under PAYTRADE_DEV=1 and refuses it otherwise.
func DevKeySet() KeySet {
	set := KeySet{}
	for _, iss := range Issuers() {
		seed := sha256.Sum256([]byte("paytrade published development key: " + iss))
		set[iss] = NewSigner(iss, ed25519.NewKeyFromSeed(seed[:]))
	}
	return set
}

// IsDevKey reports whether pub is a key of the published development set.
func IsDevKey(pub ed25519.PublicKey) bool {
	for _, s := range DevKeySet() {
		if s.key.Public().(ed25519.PublicKey).Equal(pub) {
			return true
		}
	}
	return false
}

// Public lists the verification keys of the set, in Issuers order.
func (k KeySet) Public() []PublicKey {
	var keys []PublicKey
	for _, iss := range Issuers() {
		if s, ok := k[iss]; ok {
			keys = append(keys, s.Public())
		}
	}
	return keys
}

// The files of a key directory: one private key per issuer, readable by
// its owner only, and the JWKS document of the public keys.
const (
	JWKSFile      = "jwks.json"
	keyFileSuffix = ".key"
)

// KeyFile is the name of issuer's private key in a key directory.
func KeyFile(issuer string) string { return issuer + keyFileSuffix }

// WriteDir writes the set into dir (created if missing): each private key
// as issuer.key (PKCS #8 PEM, mode 0600) and the JWKS document of their
// public keys as jwks.json. It refuses to overwrite any file: a key set is
// replaced on purpose, not by accident.
func (k KeySet) WriteDir(dir string) error {
	for _, iss := range Issuers() {
		if _, ok := k[iss]; !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, KeyFile(iss))); err == nil {
			return fmt.Errorf("write key set: %s already exists in %s", KeyFile(iss), dir)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, JWKSFile)); err == nil {
		return fmt.Errorf("write key set: %s already exists in %s", JWKSFile, dir)
	}
	for _, iss := range Issuers() {
		if s, ok := k[iss]; ok {
			if err := WritePrivateKey(dir, s); err != nil {
				return err
			}
		}
	}
	return WriteJWKS(dir, k.Public())
}

// WritePrivateKey writes s's key into dir (created if missing) as
// issuer.key, PKCS #8 PEM readable by its owner only; never over a file.
func WritePrivateKey(dir string, s *Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		return fmt.Errorf("encode %s key: %w", s.issuer, err)
	}
	return writeNew(dir, KeyFile(s.issuer), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// WriteJWKS writes the JWKS document of keys into dir as jwks.json; never
// over a file.
func WriteJWKS(dir string, keys []PublicKey) error {
	doc, err := MarshalJWKS(keys)
	if err != nil {
		return err
	}
	return writeNew(dir, JWKSFile, doc, 0o644)
}

func writeNew(dir, name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key set: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key set: %w", err)
	}
	return nil
}

// LoadSigner reads issuer's private key from dir.
func LoadSigner(dir, issuer string) (*Signer, error) {
	path := filepath.Join(dir, KeyFile(issuer))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", issuer, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s key: %s holds no PKCS #8 PEM block", issuer, path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s key %s: %w", issuer, path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s key %s: %T is not an Ed25519 key", issuer, path, parsed)
	}
	return NewSigner(issuer, key), nil
}

// LoadJWKS reads the public keys of dir's jwks.json.
func LoadJWKS(dir string) ([]PublicKey, error) {
	data, err := os.ReadFile(filepath.Join(dir, JWKSFile))
	if err != nil {
		return nil, fmt.Errorf("public keys: %w", err)
	}
	keys, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("public keys %s: %w", filepath.Join(dir, JWKSFile), err)
	}
	return keys, nil
}

// jwk is one key of a JWKS document (RFC 7517, RFC 8037): Ed25519 only.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// MarshalJWKS is the JWKS document of keys.
func MarshalJWKS(keys []PublicKey) ([]byte, error) {
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Key),
			Kid: k.KeyID, Use: "sig", Alg: algEdDSA,
		})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode jwks: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseJWKS reads a JWKS document of Ed25519 signing keys. Each kid names
// its issuer before its first "-" (as KeyID writes it); an unknown issuer,
// a repeated kid or a key of another kind makes the whole document wrong.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("jwks has no keys")
	}
	var keys []PublicKey
	seen := map[string]bool{}
	for i, k := range doc.Keys {
		switch {
		case k.Kty != "OKP" || k.Crv != "Ed25519":
			return nil, fmt.Errorf("jwks key %d: kty %q crv %q, want OKP Ed25519", i, k.Kty, k.Crv)
		case k.Alg != "" && k.Alg != algEdDSA:
			return nil, fmt.Errorf("jwks key %d: alg %q, want %s", i, k.Alg, algEdDSA)
		case k.Use != "" && k.Use != "sig":
			return nil, fmt.Errorf("jwks key %d: use %q, want sig", i, k.Use)
		case seen[k.Kid]:
			return nil, fmt.Errorf("jwks key %d: kid %q appears twice", i, k.Kid)
		}
		seen[k.Kid] = true
		issuer, _, ok := strings.Cut(k.Kid, "-")
		if !ok || !slices.Contains(Issuers(), issuer) {
			return nil, fmt.Errorf("jwks key %d: kid %q names no issuer of %v", i, k.Kid, Issuers())
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwks key %q: x is not a base64url Ed25519 public key", k.Kid)
		}
		keys = append(keys, PublicKey{Issuer: issuer, KeyID: k.Kid, Key: ed25519.PublicKey(x)})
	}
	return keys, nil
}
