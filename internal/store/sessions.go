package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a signed-in web UI session of a token.
type Session struct {
	TokenID   string
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SessionStore keeps web UI sessions; ids are stored hashed.
type SessionStore interface {
	CreateSession(ctx context.Context, idHash []byte, s Session) error
	// GetSession returns a session that has not expired, with its token.
	GetSession(ctx context.Context, idHash []byte) (Session, Token, error)
	DeleteSession(ctx context.Context, idHash []byte) error
}

var _ SessionStore = (*DB)(nil)

func (db *DB) CreateSession(ctx context.Context, idHash []byte, s Session) error {
	return db.tx(ctx, func(tx *Tx) error {
		// Expired sessions go as new ones come, so the table stays small.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < ?`, toDB(now())); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions(id_hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			idHash, s.TokenID, s.CSRF, toDB(now()), toDB(s.ExpiresAt))
		return err
	})
}

func (db *DB) GetSession(ctx context.Context, idHash []byte) (Session, Token, error) {
	var s Session
	var created, expires sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT token_id, csrf, created_at, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?`, idHash, toDB(now())).
		Scan(&s.TokenID, &s.CSRF, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return s, Token{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return s, Token{}, err
	}
	s.CreatedAt, s.ExpiresAt = fromDB(created), fromDB(expires)
	tok, err := scanToken(db.read.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, s.TokenID))
	return s, tok, err
}

func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
		return err
	})
}
