package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/config"
)

func TestKeySetWrittenAndReadBackSignsWhatItsJWKSVerifies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	set := testKeys(t)
	if err := set.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	public, err := LoadJWKS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(public) != len(Issuers()) {
		t.Fatalf("jwks has %d keys, want %d", len(public), len(Issuers()))
	}
	for _, iss := range Issuers() {
		s, err := LoadSigner(dir, iss)
		if err != nil {
			t.Fatal(err)
		}
		if s.kid != set[iss].kid {
			t.Errorf("%s: kid %q read back, want %q", iss, s.kid, set[iss].kid)
		}
		info, err := os.Stat(filepath.Join(dir, KeyFile(iss)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", KeyFile(iss), info.Mode().Perm())
		}
	}
	signer, err := LoadSigner(dir, IssuerTrade)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthenticator(AudiencePay, public).Parse(mint(t, signer, Service("trade"), time.Hour, time.Now(), AudiencePay)); err != nil {
		t.Errorf("a key read back signs what its jwks refuses: %v", err)
	}
	if err := testKeys(t).WriteDir(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second WriteDir = %v, want a refusal to overwrite", err)
	}
	if s, _ := LoadSigner(dir, IssuerTrade); s.kid != set[IssuerTrade].kid {
		t.Error("the refused WriteDir replaced a key")
	}
}

func TestParseJWKSRefusesWhatIsNotAnIssuersEd25519Key(t *testing.T) {
	x := `"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"`
	tests := map[string]string{
		"not JSON":        `{`,
		"no keys":         `{"keys":[]}`,
		"RSA":             `{"keys":[{"kty":"RSA","kid":"users-a","n":"AQAB","e":"AQAB"}]}`,
		"another curve":   `{"keys":[{"kty":"OKP","crv":"X25519","kid":"users-a",` + x + `}]}`,
		"another alg":     `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"HS256","kid":"users-a",` + x + `}]}`,
		"for encryption":  `{"keys":[{"kty":"OKP","crv":"Ed25519","use":"enc","kid":"users-a",` + x + `}]}`,
		"kid of nobody":   `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"admin-a",` + x + `}]}`,
		"kid without -":   `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"users",` + x + `}]}`,
		"short x":         `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"users-a","x":"AAAA"}]}`,
		"kid twice":       `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"users-a",` + x + `},{"kty":"OKP","crv":"Ed25519","kid":"users-a",` + x + `}]}`,
		"x not base64url": `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"users-a","x":"!!"}]}`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if keys, err := ParseJWKS([]byte(doc)); err == nil {
				t.Errorf("ParseJWKS = %+v, nil; want an error", keys)
			}
		})
	}
}

// readKeys runs ReadServiceKeys over env.
func readKeys(env map[string]string, service string) (ServiceKeys, error) {
	r := config.NewReader(func(k string) string { return env[k] })
	keys := ReadServiceKeys(r, service)
	return keys, r.Err()
}

func TestDevKeysAreRefusedWithoutPaytradeDev(t *testing.T) {
	devDir := filepath.Join(t.TempDir(), "dev")
	if err := DevKeySet().WriteDir(devDir); err != nil {
		t.Fatal(err)
	}
	// A fresh pay key beside the published jwks: still refused.
	mixed := filepath.Join(t.TempDir(), "mixed")
	if err := WritePrivateKey(mixed, testKeys(t)[IssuerPay]); err != nil {
		t.Fatal(err)
	}
	if err := WriteJWKS(mixed, DevKeySet().Public()); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if err := testKeys(t).WriteDir(fresh); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"no keys", map[string]string{}, "PAYTRADE_KEYS_DIR is not set"},
		{"the development key set", map[string]string{"PAYTRADE_KEYS_DIR": devDir}, "published development key"},
		{"a jwks trusting the development keys", map[string]string{"PAYTRADE_KEYS_DIR": mixed}, "published development key"},
		{"a directory without keys", map[string]string{"PAYTRADE_KEYS_DIR": t.TempDir()}, "no such file"},
		{"PAYTRADE_DEV=0", map[string]string{"PAYTRADE_DEV": "0"}, "PAYTRADE_KEYS_DIR is not set"},
		{"a fresh key set", map[string]string{"PAYTRADE_KEYS_DIR": fresh}, ""},
		{"development mode, no directory", map[string]string{"PAYTRADE_DEV": "1"}, ""},
		{"development mode, the development key set", map[string]string{"PAYTRADE_DEV": "1", "PAYTRADE_KEYS_DIR": devDir}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := readKeys(tt.env, IssuerPay)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadServiceKeys: %v", err)
				}
				if keys.Signer == nil || keys.Authenticator == nil || keys.Signer.Issuer() != IssuerPay {
					t.Fatalf("ReadServiceKeys = %+v, want pay's key and an authenticator", keys)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadServiceKeys error = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestDevKeySetIsDerivedFromNamesSoItIsKnownToAll(t *testing.T) {
	a, b := DevKeySet(), DevKeySet()
	for _, iss := range Issuers() {
		if a[iss].kid != b[iss].kid || !IsDevKey(a[iss].Public().Key) {
			t.Errorf("%s: the development key is not the published one", iss)
		}
	}
	for _, s := range testKeys(t) {
		if IsDevKey(s.Public().Key) {
			t.Errorf("a fresh %s key is taken for a development key", s.issuer)
		}
	}
}
