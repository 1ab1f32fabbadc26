package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Certificate sources.
const (
	CertUploaded = "uploaded"
	CertACME     = "acme"
)

// Certificate describes a stored TLS certificate; its sealed key is never
// part of it, so it is safe to return from an API.
type Certificate struct {
	// Name is the first host the certificate holds; a certificate replaces
	// the one of the same name.
	Name        string    `json:"name"`
	Hosts       []string  `json:"hosts"`
	CertPEM     string    `json:"cert_pem,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Issuer      string    `json:"issuer"`
	Fingerprint string    `json:"fingerprint"`
	Source      string    `json:"source"` // uploaded or acme
	UpdatedBy   string    `json:"updated_by"`
	UpdatedAt   time.Time `json:"updated_at"`
	// LastError is the newest failure to renew (ACME), cleared by success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// CertificateStore keeps certificates and ACME account keys, both sealed.
type CertificateStore interface {
	PutCertificate(ctx context.Context, c Certificate, keySealed []byte) error
	ListCertificates(ctx context.Context) ([]Certificate, error)
	// SealedCertificate returns one certificate with its chain and sealed key.
	SealedCertificate(ctx context.Context, name string) (Certificate, []byte, error)
	DeleteCertificate(ctx context.Context, name string) error
	SetCertificateError(ctx context.Context, name, msg string) error
	ACMEAccountKey(ctx context.Context, directory string) ([]byte, error)
	// PutACMEAccountKey keeps the first key stored for a directory and
	// returns the one in force.
	PutACMEAccountKey(ctx context.Context, directory string, sealed []byte) ([]byte, error)
}

var _ CertificateStore = (*DB)(nil)

func (db *DB) PutCertificate(ctx context.Context, c Certificate, keySealed []byte) error {
	hosts, err := json.Marshal(c.Hosts)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO certificates(name, hosts, cert_pem, key_sealed, not_before, not_after, issuer, fingerprint, source, updated_by, updated_at, last_error, last_error_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', NULL)
			ON CONFLICT(name) DO UPDATE SET hosts = excluded.hosts, cert_pem = excluded.cert_pem, key_sealed = excluded.key_sealed,
				not_before = excluded.not_before, not_after = excluded.not_after, issuer = excluded.issuer, fingerprint = excluded.fingerprint,
				source = excluded.source, updated_by = excluded.updated_by, updated_at = excluded.updated_at, last_error = '', last_error_at = NULL`,
			c.Name, string(hosts), c.CertPEM, keySealed, toDB(c.NotBefore), toDB(c.NotAfter), c.Issuer, c.Fingerprint, c.Source, c.UpdatedBy, toDB(now()))
		return err
	})
}

const certColumns = `name, hosts, cert_pem, not_before, not_after, issuer, fingerprint, source, updated_by, updated_at, last_error, last_error_at`

func scanCertificate(row scanner, extra ...any) (Certificate, error) {
	var c Certificate
	var hosts string
	var nb, na, up, errAt sql.NullInt64
	err := row.Scan(append([]any{&c.Name, &hosts, &c.CertPEM, &nb, &na, &c.Issuer, &c.Fingerprint, &c.Source, &c.UpdatedBy, &up, &c.LastError, &errAt}, extra...)...)
	if err != nil {
		return c, err
	}
	c.NotBefore, c.NotAfter, c.UpdatedAt, c.LastErrorAt = fromDB(nb), fromDB(na), fromDB(up), fromDB(errAt)
	if err := json.Unmarshal([]byte(hosts), &c.Hosts); err != nil {
		return c, fmt.Errorf("certificate %s: hosts: %w", c.Name, err)
	}
	return c, nil
}

// ListCertificates lists every certificate by name, chains included.
func (db *DB) ListCertificates(ctx context.Context) ([]Certificate, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+certColumns+` FROM certificates ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r scanner) (Certificate, error) { return scanCertificate(r) })
}

func (db *DB) SealedCertificate(ctx context.Context, name string) (Certificate, []byte, error) {
	var sealed []byte
	c, err := scanCertificate(db.read.QueryRowContext(ctx, `SELECT `+certColumns+`, key_sealed FROM certificates WHERE name = ?`, name), &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil, fmt.Errorf("certificate %s: %w", name, ErrNotFound)
	}
	return c, sealed, err
}

func (db *DB) DeleteCertificate(ctx context.Context, name string) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM certificates WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("certificate %s: %w", name, ErrNotFound)
		}
		return nil
	})
}

// SetCertificateError records a failure to renew; msg may quote the ACME
// server (see storableText). An unknown name is no error: the certificate
// may have been deleted meanwhile.
func (db *DB) SetCertificateError(ctx context.Context, name, msg string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE certificates SET last_error = ?, last_error_at = ? WHERE name = ?`, storableText(msg), toDB(now()), name)
		return err
	})
}

func (db *DB) ACMEAccountKey(ctx context.Context, directory string) ([]byte, error) {
	var sealed []byte
	err := db.read.QueryRowContext(ctx, `SELECT key_sealed FROM acme_accounts WHERE directory = ?`, directory).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("ACME account for %s: %w", directory, ErrNotFound)
	}
	return sealed, err
}

func (db *DB) PutACMEAccountKey(ctx context.Context, directory string, sealed []byte) ([]byte, error) {
	var inForce []byte
	err := db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO acme_accounts(directory, key_sealed, created_at) VALUES (?, ?, ?) ON CONFLICT(directory) DO NOTHING`,
			directory, sealed, toDB(now())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT key_sealed FROM acme_accounts WHERE directory = ?`, directory).Scan(&inForce)
	})
	return inForce, err
}
