// Package auth defines roles and API tokens.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Role orders what a token may do; a higher role includes the lower ones.
type Role int

const (
	// Public routes need no credentials (health checks, signed webhooks).
	Public Role = iota
	Viewer
	Deployer
	Admin
)

var roleNames = map[Role]string{Public: "public", Viewer: "viewer", Deployer: "deployer", Admin: "admin"}

func (r Role) String() string { return roleNames[r] }

// ParseRole accepts the names a user can give a token.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "viewer":
		return Viewer, nil
	case "deployer":
		return Deployer, nil
	case "admin":
		return Admin, nil
	}
	return Public, fmt.Errorf("role %q is not one of admin, deployer, viewer", s)
}

// tokenPrefix makes leaked tokens recognisable to secret scanners.
const tokenPrefix = "slw_"

// NewToken returns a fresh random token and the hash to store for it.
func NewToken() (plain string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS RNG failing is unrecoverable
	}
	plain = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, Hash(plain)
}

// Hash is what the store keeps. Tokens carry 256 random bits, so a plain
// SHA-256 is enough: there is nothing to brute-force.
func Hash(plain string) []byte {
	h := sha256.Sum256([]byte(plain))
	return h[:]
}

// NewID returns a short random identifier with the given prefix.
func NewID(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return fmt.Sprintf("%s%x", prefix, b)
}
