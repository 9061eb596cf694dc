package signaling

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Key is one API key a Server accepts.
type Key struct {
	Key string `toml:"key"`
	// Domains the WebSocket request's Origin host must be one of (compared
	// case-insensitively, port ignored). Empty: any origin, or none.
	Domains []string `toml:"domains"`
	// Secret, when set, makes peers of this key authenticate with a
	// Credential signed with it.
	Secret string `toml:"secret"`
}

// KeyStore is an immutable set of keys. A Server without one accepts any key.
type KeyStore struct {
	keys map[string]Key
}

// NewKeyStore checks keys (non-empty, unique, domains being host names) and
// indexes them.
func NewKeyStore(keys ...Key) (*KeyStore, error) {
	ks := &KeyStore{keys: make(map[string]Key, len(keys))}
	for i, k := range keys {
		if k.Key == "" {
			return nil, fmt.Errorf("signaling: key #%d: empty key", i+1)
		}
		if _, dup := ks.keys[k.Key]; dup {
			return nil, fmt.Errorf("signaling: key %q listed twice", k.Key)
		}
		doms := make([]string, 0, len(k.Domains))
		for _, d := range k.Domains {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "" || strings.ContainsAny(d, "/:@ ") {
				return nil, fmt.Errorf("signaling: key %q: domain %q is not a host name", k.Key, d)
			}
			doms = append(doms, d)
		}
		k.Domains = doms
		ks.keys[k.Key] = k
	}
	return ks, nil
}

// LoadKeys reads a TOML key file:
//
//	[[keys]]
//	key = "abc"
//	domains = ["example.com", "localhost"]  # optional
//	secret = "s3cr3t"                       # optional
//
// Unknown fields are an error, so a typo cannot silently disable a check.
func LoadKeys(path string) (*KeyStore, error) {
	var f struct {
		Keys []Key `toml:"keys"`
	}
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, fmt.Errorf("signaling: key file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("signaling: key file %s: unknown field %q", path, und[0].String())
	}
	ks, err := NewKeyStore(f.Keys...)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ks, nil
}

// Lookup returns the key named k.
func (ks *KeyStore) Lookup(k string) (Key, bool) {
	key, ok := ks.keys[k]
	return key, ok
}

// Len is the number of keys.
func (ks *KeyStore) Len() int { return len(ks.keys) }

// allowsOrigin reports whether a WebSocket request with this Origin header
// value may use k.
func (k Key) allowsOrigin(origin string) bool {
	if len(k.Domains) == 0 {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return slices.Contains(k.Domains, strings.ToLower(u.Hostname()))
}
