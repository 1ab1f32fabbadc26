// Package secret encrypts values at rest with AES-256-GCM under a master key.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Keyring seals and opens values with the master key.
type Keyring struct {
	aead   cipher.AEAD
	derive []byte // the root of Derive's keys, itself derived: never the master key
}

// EnvMasterKey names the variable that overrides DATA/master.key.
const EnvMasterKey = "SLIPWAY_MASTER_KEY"

// LoadOrCreate reads the master key from SLIPWAY_MASTER_KEY (64 hex chars) or
// DATA/master.key, creating the file (mode 0600) on first start.
func LoadOrCreate(dataDir string) (*Keyring, error) {
	if v := os.Getenv(EnvMasterKey); v != "" {
		return fromHex(strings.TrimSpace(v), EnvMasterKey)
	}
	path := filepath.Join(dataDir, "master.key")
	b, err := os.ReadFile(path)
	if err == nil {
		return fromHex(strings.TrimSpace(string(b)), path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write master key: %w", err)
	}
	return New(key)
}

func fromHex(s, from string) (*Keyring, error) {
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("master key from %s must be 64 hex characters (32 bytes)", from)
	}
	return New(key)
}

// New builds a keyring from a 32-byte key.
func New(key []byte) (*Keyring, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	root := hmac.New(sha256.New, key)
	root.Write([]byte("slipway derived keys v1"))
	return &Keyring{aead: aead, derive: root.Sum(nil)}, nil
}

// Derive is a 32-byte key for label, the same wherever the master key is:
// servers sharing a data directory prove to each other with it.
func (k *Keyring) Derive(label string) []byte {
	h := hmac.New(sha256.New, k.derive)
	h.Write([]byte(label))
	return h.Sum(nil)
}

// Seal encrypts plain; the random nonce is prepended to the result.
func (k *Keyring) Seal(plain []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return k.aead.Seal(nonce, nonce, plain, nil)
}

// Open decrypts a value produced by Seal.
func (k *Keyring) Open(sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value is too short")
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errors.New("sealed value does not decrypt with this master key")
	}
	return plain, nil
}
