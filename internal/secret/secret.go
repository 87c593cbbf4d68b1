// Package secret keeps write-only values (passwords, keys, tokens) safe:
// encrypted at rest with AES-GCM under a key file of mode 0600, and held in
// memory in a type that redacts itself when printed, logged or marshalled.
// The same key, derived, signs tokens the server checks without storing
// them (Box.Sign, Box.Verify: run tokens).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// KeySize is the size of the AES-256 key in the key file.
const KeySize = 32

// Box seals and opens secrets with one key, and signs tokens with a key
// derived from it.
type Box struct {
	aead   cipher.AEAD
	macKey []byte
}

// LoadOrCreateKey reads the key at path, creating it (mode 0600) with a
// random key when it does not exist. A key file readable by others is
// refused, because anyone who reads it can read every secret.
func LoadOrCreateKey(path string) (*Box, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating secret key %s: %w", path, err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading secret key %s: %w", path, err)
	} else if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key %s has mode %v; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	return NewBox(key)
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	derive := hmac.New(sha256.New, key)
	derive.Write([]byte("paddock token signing key"))
	return &Box{aead: aead, macKey: derive.Sum(nil)}, nil
}

// Sign returns a URL-safe MAC of the parts, for tokens the server can check
// without storing them (e.g. run tokens).
func (b *Box) Sign(parts ...string) string {
	m := hmac.New(sha256.New, b.macKey)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is Sign(parts...), in constant time.
func (b *Box) Verify(sig string, parts ...string) bool {
	return hmac.Equal([]byte(sig), []byte(b.Sign(parts...)))
}

// Seal encrypts plaintext with a fresh random nonce; the nonce leads the
// result. additional binds the ciphertext to its owner (e.g. the target
// name) so it cannot be moved to another record.
func (b *Box) Seal(plaintext, additional []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b.aead.Seal(nonce, nonce, plaintext, additional)
}

// Open decrypts what Seal produced with the same additional data.
func (b *Box) Open(sealed, additional []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret is too short")
	}
	return b.aead.Open(nil, sealed[:n], sealed[n:], additional)
}

// SealMap encrypts a set of named secret values as one blob; an empty map
// seals to nil.
func (b *Box) SealMap(m map[string]Value, additional []byte) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	plain := make(map[string]string, len(m))
	for k, v := range m {
		plain[k] = v.Reveal()
	}
	data, err := json.Marshal(plain)
	if err != nil {
		return nil, err
	}
	return b.Seal(data, additional), nil
}

// OpenMap reverses SealMap.
func (b *Box) OpenMap(sealed, additional []byte) (map[string]Value, error) {
	if len(sealed) == 0 {
		return map[string]Value{}, nil
	}
	data, err := b.Open(sealed, additional)
	if err != nil {
		return nil, fmt.Errorf("decrypting secrets (wrong or replaced secret key?): %w", err)
	}
	var plain map[string]string
	if err := json.Unmarshal(data, &plain); err != nil {
		return nil, err
	}
	out := make(map[string]Value, len(plain))
	for k, v := range plain {
		out[k] = New(v)
	}
	return out, nil
}

// Value is a secret string. Printing, logging or marshalling it shows
// "[redacted]"; only Reveal returns the value.
type Value struct{ v *string }

// New wraps s.
func New(s string) Value { return Value{v: &s} }

// Reveal returns the secret itself. Call it only where the value is used.
func (s Value) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsSet reports whether a value is held.
func (s Value) IsSet() bool { return s.v != nil }

const redacted = "[redacted]"

// String redacts.
func (s Value) String() string { return redacted }

// GoString redacts.
func (s Value) GoString() string { return redacted }

// MarshalJSON redacts.
func (s Value) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// LogValue redacts for log/slog.
func (s Value) LogValue() slog.Value { return slog.StringValue(redacted) }
