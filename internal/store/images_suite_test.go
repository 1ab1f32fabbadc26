package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// digest is a made-up manifest digest, distinct by n.
func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func TestImagesAndTags(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if imgs, err := db.ListImages(ctx, ""); err != nil || imgs == nil || len(imgs) != 0 {
			t.Fatalf("ListImages of an empty registry: %#v, %v", imgs, err)
		}
		const manifest = "application/vnd.oci.image.manifest.v1+json"
		push := func(img Image, tag string) Image {
			t.Helper()
			time.Sleep(time.Millisecond) // each push at its own time
			from := time.Now()
			if err := db.RecordImage(ctx, img, tag); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetImage(ctx, img.Repo, img.Digest)
			if err != nil || !within(got.PushedAt, from, time.Now()) || got.PushedBy != img.PushedBy {
				t.Fatalf("pushed %+v: read %+v, %v", img, got, err)
			}
			return got
		}
		one := push(Image{Repo: "shop", Digest: digest(1), MediaType: manifest, Size: 1234, PushedBy: "ci",
			Annotations: map[string]string{"org.opencontainers.image.revision": "c0ffee", "note": "ü ✓ \"quoted\""}}, "v1")
		want := Image{Repo: "shop", Digest: digest(1), MediaType: manifest, Size: 1234, PushedBy: "ci", PushedAt: one.PushedAt,
			Annotations: map[string]string{"org.opencontainers.image.revision": "c0ffee", "note": "ü ✓ \"quoted\""}, Tags: []string{"v1"}}
		if !reflect.DeepEqual(one, want) {
			t.Fatalf("GetImage:\n got %#v\nwant %#v", one, want)
		}
		// A manifest without a tag has an empty tag list.
		two := push(Image{Repo: "shop", Digest: digest(2), MediaType: manifest, Size: 5, PushedBy: "ci"}, "")
		if two.Tags == nil || len(two.Tags) != 0 || two.Annotations != nil {
			t.Fatalf("an untagged manifest without annotations: %#v", two)
		}
		// Tags move to the manifest pushed last with them; a manifest lists
		// its tags newest first.
		push(Image{Repo: "shop", Digest: digest(2), MediaType: manifest, Size: 5, PushedBy: "ci"}, "latest")
		push(Image{Repo: "shop", Digest: digest(1), MediaType: manifest, Size: 1234, PushedBy: "ci"}, "v1.0")
		push(Image{Repo: "shop", Digest: digest(2), MediaType: manifest, Size: 5, PushedBy: "ci"}, "v2")
		// Pushing a manifest again dates it anew and keeps what it is.
		again := push(Image{Repo: "shop", Digest: digest(1), MediaType: "changed", Size: 1, PushedBy: "bob"}, "latest")
		if again.MediaType != manifest || again.Size != 1234 || again.Annotations["note"] != "ü ✓ \"quoted\"" || !again.PushedAt.After(one.PushedAt) {
			t.Fatalf("a manifest pushed again: %+v", again)
		}
		push(Image{Repo: "blog", Digest: digest(1), MediaType: manifest, Size: 99, PushedBy: "ci"}, "v1")

		tags := map[string]string{"v1": digest(1), "v1.0": digest(1), "latest": digest(1), "v2": digest(2)}
		for tag, d := range tags {
			if got, err := db.TagDigest(ctx, "shop", tag); err != nil || got != d {
				t.Errorf("TagDigest(shop, %s) = %s, %v; want %s", tag, got, err, d)
			}
		}
		if got, err := db.TagDigest(ctx, "blog", "v1"); err != nil || got != digest(1) {
			t.Errorf("TagDigest(blog, v1) = %s, %v", got, err)
		}
		list, err := db.ListImages(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Digest != digest(1) || fmt.Sprint(list[0].Tags) != "[latest v1.0 v1]" || list[1].Digest != digest(2) || fmt.Sprint(list[1].Tags) != "[v2]" {
			t.Fatalf("ListImages(shop) = %+v", list)
		}
		if got, _ := db.GetImage(ctx, "shop", digest(1)); !reflect.DeepEqual(got, list[0]) {
			t.Fatalf("read %+v, listed %+v", got, list[0])
		}
		all, err := db.ListImages(ctx, "")
		if err != nil || len(all) != 3 || all[0].Repo != "blog" || all[1].Repo != "shop" || all[1].Digest != digest(1) || all[2].Digest != digest(2) {
			t.Fatalf("ListImages() = %+v, %v; want newest first", all, err)
		}
		if none, err := db.ListImages(ctx, "nope"); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("ListImages(nope) = %#v, %v", none, err)
		}

		// Untagging keeps the manifest and its other tags.
		if err := db.DeleteTag(ctx, "shop", "v1"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteTag(ctx, "shop", "never"); err != nil {
			t.Fatalf("DeleteTag of an unknown tag: %v", err)
		}
		if got, _ := db.GetImage(ctx, "shop", digest(1)); fmt.Sprint(got.Tags) != "[latest v1.0]" {
			t.Fatalf("tags after DeleteTag: %v", got.Tags)
		}
		if got, _ := db.GetImage(ctx, "blog", digest(1)); fmt.Sprint(got.Tags) != "[v1]" {
			t.Fatalf("another repository's tag went too: %v", got.Tags)
		}
		// Deleting a manifest takes its tags, and nothing of the same digest
		// in another repository.
		if err := db.DeleteImage(ctx, "shop", digest(1)); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteImage(ctx, "shop", digest(9)); err != nil {
			t.Fatalf("DeleteImage of an unknown manifest: %v", err)
		}
		for name, err := range map[string]error{
			"GetImage of the deleted manifest": func() error { _, err := db.GetImage(ctx, "shop", digest(1)); return err }(),
			"TagDigest of its tag":             func() error { _, err := db.TagDigest(ctx, "shop", "latest"); return err }(),
			"TagDigest of an untagged tag":     func() error { _, err := db.TagDigest(ctx, "shop", "v1"); return err }(),
			"TagDigest of an unknown repo":     func() error { _, err := db.TagDigest(ctx, "nope", "v2"); return err }(),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if d, err := db.TagDigest(ctx, "shop", "v2"); err != nil || d != digest(2) {
			t.Fatalf("the other manifest's tag: %s, %v", d, err)
		}
		if got, err := db.GetImage(ctx, "blog", digest(1)); err != nil || got.Size != 99 {
			t.Fatalf("the same digest in another repository: %+v, %v", got, err)
		}
	})
}

func TestImageReferrers(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		subject := digest(1)
		imgs := []Image{
			{Repo: "shop", Digest: subject, MediaType: "m", Size: 1},
			{Repo: "shop", Digest: digest(12), MediaType: "m", ArtifactType: "application/vnd.dev.sigstore.bundle+json", Subject: subject, Size: 2, Annotations: map[string]string{"a": "1"}},
			{Repo: "shop", Digest: digest(11), MediaType: "m", ArtifactType: "application/spdx+json", Subject: subject, Size: 3},
			{Repo: "shop", Digest: digest(13), MediaType: "m", ArtifactType: "x", Subject: digest(2), Size: 4},
			{Repo: "blog", Digest: digest(14), MediaType: "m", ArtifactType: "x", Subject: subject, Size: 5},
		}
		for _, img := range imgs {
			time.Sleep(time.Millisecond)
			if err := db.RecordImage(ctx, img, ""); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			repo, subject string
			want          []string // digests, oldest first
		}{
			{"shop", subject, []string{digest(12), digest(11)}},
			{"shop", digest(2), []string{digest(13)}},
			{"blog", subject, []string{digest(14)}},
			{"shop", digest(12), []string{}},
			{"nope", subject, []string{}},
		}
		for _, c := range cases {
			refs, err := db.Referrers(ctx, c.repo, c.subject)
			if err != nil || refs == nil {
				t.Fatalf("Referrers(%s, %s): %#v, %v", c.repo, c.subject, refs, err)
			}
			got := []string{}
			for _, r := range refs {
				got = append(got, r.Digest)
				if r.Subject != c.subject || r.Repo != c.repo {
					t.Errorf("Referrers(%s, %s) lists %+v", c.repo, c.subject, r)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Referrers(%s, %s) = %v, want %v", c.repo, c.subject, got, c.want)
			}
		}
		refs, _ := db.Referrers(ctx, "shop", subject)
		if refs[0].ArtifactType != "application/vnd.dev.sigstore.bundle+json" || refs[0].Annotations["a"] != "1" || refs[0].Size != 2 {
			t.Fatalf("a referrer read back: %+v", refs[0])
		}
	})
}

func TestRepositoryPolicies(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if p, err := db.GetPolicy(ctx, "shop"); err != nil || p != (RepoPolicy{Repo: "shop"}) {
			t.Fatalf("the default policy: %+v, %v", p, err)
		}
		steps := []RepoPolicy{
			{Repo: "shop", ImmutableTags: true, KeepLast: 10, ExpireUntaggedDays: 7},
			{Repo: "shop", ImmutableTags: false, KeepLast: 3},
			{Repo: "shop", ImmutableTags: true},
			{Repo: "shop/api", ImmutableTags: true, KeepLast: 1, ExpireUntaggedDays: 365},
		}
		for _, p := range steps {
			if err := db.SetPolicy(ctx, p); err != nil {
				t.Fatalf("SetPolicy(%+v): %v", p, err)
			}
			if got, err := db.GetPolicy(ctx, p.Repo); err != nil || got != p {
				t.Fatalf("GetPolicy after SetPolicy(%+v) = %+v, %v", p, got, err)
			}
		}
		if got, _ := db.GetPolicy(ctx, "shop"); got != steps[2] {
			t.Fatalf("another repository's policy changed shop's: %+v", got)
		}
	})
}

// DeleteRepositories forgets APP and APP/NAME, and nothing else: not a
// repository whose name only starts with the app's, nor another app's
// repository of the same name.
func TestDeleteRepositories(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		repos := []string{"shop", "shop/api", "shop/api/v2", "shopping", "shopping/x", "shop-2/x", "blog", "blog/shop", "Shop/x", "xshop/y"}
		for i, repo := range repos {
			if err := db.RecordImage(ctx, Image{Repo: repo, Digest: digest(i), MediaType: "m"}, "latest"); err != nil {
				t.Fatal(err)
			}
			if err := db.SetPolicy(ctx, RepoPolicy{Repo: repo, ImmutableTags: true, KeepLast: i}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.DeleteRepositories(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteRepositories(ctx, "nope"); err != nil {
			t.Fatal(err)
		}
		for i, repo := range repos {
			gone := repo == "shop" || repo == "shop/api" || repo == "shop/api/v2"
			imgs, err := db.ListImages(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			_, tagErr := db.TagDigest(ctx, repo, "latest")
			p, _ := db.GetPolicy(ctx, repo)
			if gone {
				if len(imgs) != 0 || !errors.Is(tagErr, ErrNotFound) || p != (RepoPolicy{Repo: repo}) {
					t.Errorf("%s kept: images %+v, tag %v, policy %+v", repo, imgs, tagErr, p)
				}
				continue
			}
			if len(imgs) != 1 || tagErr != nil || p.KeepLast != i || !p.ImmutableTags {
				t.Errorf("%s deleted: images %+v, tag %v, policy %+v", repo, imgs, tagErr, p)
			}
		}
	})
}

// The same manifest pushed under several tags at once is one image with
// every tag.
func TestConcurrentPushesOfOneManifest(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		errs := race(t, db, func(i int) error {
			return db.RecordImage(ctx, Image{Repo: "shop", Digest: digest(1), MediaType: "m", Size: 7, PushedBy: fmt.Sprint(i)}, fmt.Sprintf("t%d", i))
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("RecordImage %d: %v", i, err)
			}
		}
		imgs, err := db.ListImages(ctx, "shop")
		if err != nil || len(imgs) != 1 || len(imgs[0].Tags) != racers {
			t.Fatalf("ListImages = %+v, %v; want one image with %d tags", imgs, err, racers)
		}
	})
}
