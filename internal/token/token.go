// Package token makes Paddock's bearer tokens and the hashes they are
// stored as. A token's prefix says whose it is: pdk_ a user's, pdn_ a node
// agent's, pdr_ a run's (run tokens are signed, not stored: see dispatch);
// pdl_ is a user's one-time studio sign-in link and pds_ a user's studio
// session, both stored like user tokens and good only in the studio.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Prefixes of the kinds of token.
const (
	UserPrefix = "pdk_"
	NodePrefix = "pdn_"
	RunPrefix  = "pdr_"
	// LinkPrefix starts a one-time studio sign-in code (`paddock studio`).
	LinkPrefix = "pdl_"
	// SessionPrefix starts a studio session (the browser's cookie).
	SessionPrefix = "pds_"
)

// New returns a new random user token.
func New() string { return UserPrefix + random() }

// NewLink returns a new random studio sign-in code.
func NewLink() string { return LinkPrefix + random() }

// NewSession returns a new random studio session token.
func NewSession() string { return SessionPrefix + random() }

// NewNode returns a new random node token.
func NewNode() string { return NodePrefix + random() }

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash is how tokens are stored: hex SHA-256. Tokens are random and long,
// so a plain hash is enough (no password stretching needed).
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewID returns a new token id: public, shown in listings and used to
// revoke a token, unlike the token itself.
func NewID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "tok-" + hex.EncodeToString(b)
}
