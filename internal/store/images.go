package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Image is a manifest pushed to the registry.
type Image struct {
	Repo         string            `json:"repository"`
	Digest       string            `json:"digest"`
	MediaType    string            `json:"media_type"`
	ArtifactType string            `json:"artifact_type,omitempty"`
	Size         int64             `json:"size"`
	Subject      string            `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Tags         []string          `json:"tags"`
	PushedAt     time.Time         `json:"pushed_at"`
	PushedBy     string            `json:"pushed_by"`
}

// RepoPolicy is a repository's tag and lifecycle rules.
type RepoPolicy struct {
	Repo               string `json:"repository"`
	ImmutableTags      bool   `json:"immutable_tags"`
	KeepLast           int    `json:"keep_last"`
	ExpireUntaggedDays int    `json:"expire_untagged_days"`
}

// ImageStore indexes what the registry holds, for listing and policy.
type ImageStore interface {
	RecordImage(ctx context.Context, img Image, tag string) error
	ListImages(ctx context.Context, repo string) ([]Image, error)
	GetImage(ctx context.Context, repo, digest string) (Image, error)
	TagDigest(ctx context.Context, repo, tag string) (string, error)
	DeleteImage(ctx context.Context, repo, digest string) error
	DeleteTag(ctx context.Context, repo, tag string) error
	Referrers(ctx context.Context, repo, subject string) ([]Image, error)
	GetPolicy(ctx context.Context, repo string) (RepoPolicy, error)
	SetPolicy(ctx context.Context, p RepoPolicy) error
	DeleteRepositories(ctx context.Context, app string) error
}

var _ ImageStore = (*DB)(nil)

// RecordImage stores a pushed manifest and, when tag is set, points the tag at it.
func (db *DB) RecordImage(ctx context.Context, img Image, tag string) error {
	ann, _ := json.Marshal(img.Annotations)
	return db.tx(ctx, func(tx *Tx) error {
		at := toDB(now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO images(repo, digest, media_type, artifact_type, size, subject, annotations, pushed_at, pushed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(repo, digest) DO UPDATE SET pushed_at = excluded.pushed_at, pushed_by = excluded.pushed_by`,
			img.Repo, img.Digest, img.MediaType, img.ArtifactType, img.Size, img.Subject, string(ann), at, img.PushedBy); err != nil {
			return err
		}
		if tag == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO image_tags(repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`, img.Repo, tag, img.Digest, at)
		return err
	})
}

const imageCols = `repo, digest, media_type, artifact_type, size, subject, annotations, pushed_at, pushed_by`

func (db *DB) scanImages(ctx context.Context, rows *sql.Rows) ([]Image, error) {
	defer rows.Close()
	out := []Image{}
	for rows.Next() {
		var img Image
		var ann string
		var at sql.NullInt64
		if err := rows.Scan(&img.Repo, &img.Digest, &img.MediaType, &img.ArtifactType, &img.Size, &img.Subject, &ann, &at, &img.PushedBy); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(ann), &img.Annotations)
		img.PushedAt = fromDB(at)
		out = append(out, img)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		tags, err := db.read.QueryContext(ctx, `SELECT tag FROM image_tags WHERE repo = ? AND digest = ? ORDER BY updated_at DESC, tag`, out[i].Repo, out[i].Digest)
		if err != nil {
			return nil, err
		}
		out[i].Tags = []string{}
		for tags.Next() {
			var t string
			if err := tags.Scan(&t); err != nil {
				tags.Close()
				return nil, err
			}
			out[i].Tags = append(out[i].Tags, t)
		}
		tags.Close()
	}
	return out, nil
}

// ListImages lists a repository's manifests (all repositories when repo is
// empty), newest first.
func (db *DB) ListImages(ctx context.Context, repo string) ([]Image, error) {
	var rows *sql.Rows
	var err error
	if repo == "" {
		rows, err = db.read.QueryContext(ctx, `SELECT `+imageCols+` FROM images ORDER BY pushed_at DESC, digest`)
	} else {
		rows, err = db.read.QueryContext(ctx, `SELECT `+imageCols+` FROM images WHERE repo = ? ORDER BY pushed_at DESC, digest`, repo)
	}
	if err != nil {
		return nil, err
	}
	return db.scanImages(ctx, rows)
}

func (db *DB) GetImage(ctx context.Context, repo, digest string) (Image, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+imageCols+` FROM images WHERE repo = ? AND digest = ?`, repo, digest)
	if err != nil {
		return Image{}, err
	}
	imgs, err := db.scanImages(ctx, rows)
	if err != nil {
		return Image{}, err
	}
	if len(imgs) == 0 {
		return Image{}, fmt.Errorf("image %s@%s: %w", repo, digest, ErrNotFound)
	}
	return imgs[0], nil
}

func (db *DB) TagDigest(ctx context.Context, repo, tag string) (string, error) {
	var d string
	err := db.read.QueryRowContext(ctx, `SELECT digest FROM image_tags WHERE repo = ? AND tag = ?`, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("tag %s:%s: %w", repo, tag, ErrNotFound)
	}
	return d, err
}

func (db *DB) DeleteImage(ctx context.Context, repo, digest string) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM image_tags WHERE repo = ? AND digest = ?`, repo, digest); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM images WHERE repo = ? AND digest = ?`, repo, digest)
		return err
	})
}

// DeleteRepositories forgets the images, tags and policies of app's
// repositories: APP and every APP/NAME.
func (db *DB) DeleteRepositories(ctx context.Context, app string) error {
	// The prefix is compared as it is, not with LIKE: SQLite's LIKE ignores
	// the case of ASCII letters where PostgreSQL's does not, and the
	// registry's own names (strings.HasPrefix) are case-sensitive.
	// substr counts characters on both engines.
	prefix := app + "/"
	return db.tx(ctx, func(tx *Tx) error {
		for _, table := range []string{"image_tags", "images", "repo_policies"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE repo = ? OR substr(repo, 1, ?) = ?`, app, utf8.RuneCountInString(prefix), prefix); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) DeleteTag(ctx context.Context, repo, tag string) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM image_tags WHERE repo = ? AND tag = ?`, repo, tag)
		return err
	})
}

func (db *DB) Referrers(ctx context.Context, repo, subject string) ([]Image, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+imageCols+` FROM images WHERE repo = ? AND subject = ? ORDER BY pushed_at, digest`, repo, subject)
	if err != nil {
		return nil, err
	}
	return db.scanImages(ctx, rows)
}

func (db *DB) GetPolicy(ctx context.Context, repo string) (RepoPolicy, error) {
	p := RepoPolicy{Repo: repo}
	// The flag is a BOOLEAN on PostgreSQL and an INTEGER 0/1 on SQLite: a
	// bool scans and binds as either.
	err := db.read.QueryRowContext(ctx, `SELECT immutable_tags, keep_last, expire_untagged_days FROM repo_policies WHERE repo = ?`, repo).
		Scan(&p.ImmutableTags, &p.KeepLast, &p.ExpireUntaggedDays)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil // defaults: mutable tags, keep everything
	}
	return p, err
}

func (db *DB) SetPolicy(ctx context.Context, p RepoPolicy) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO repo_policies(repo, immutable_tags, keep_last, expire_untagged_days) VALUES (?, ?, ?, ?)
			ON CONFLICT(repo) DO UPDATE SET immutable_tags = excluded.immutable_tags, keep_last = excluded.keep_last, expire_untagged_days = excluded.expire_untagged_days`,
			p.Repo, p.ImmutableTags, p.KeepLast, p.ExpireUntaggedDays)
		return err
	})
}
