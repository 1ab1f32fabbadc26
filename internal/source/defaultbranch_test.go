package source

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func TestDefaultBranch(t *testing.T) {
	ctx := context.Background()
	s, err := NewService(nil, t.TempDir(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRepo(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		setHEAD []string // git arguments run in the repository first
		want    string
		wantErr bool
	}{
		{name: "a new repository's", want: "refs/heads/main"},
		{name: "renamed", setHEAD: []string{"symbolic-ref", "HEAD", "refs/heads/trunk"}, want: "refs/heads/trunk"},
		{name: "HEAD naming a tag", setHEAD: []string{"symbolic-ref", "HEAD", "refs/tags/v1"}, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setHEAD != nil {
				if _, err := s.git(ctx, "hello", c.setHEAD...); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.DefaultBranch(ctx, "hello")
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("DefaultBranch = %q, %v; want %q (error: %v)", got, err, c.want, c.wantErr)
			}
		})
	}
	if _, err := s.DefaultBranch(ctx, "../etc"); err == nil {
		t.Fatal("an app name with a path was taken")
	}
}
