package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/slipway-dev/slipway/internal/store"
)

// GCReport says what a collection removed (or would remove, on a dry run).
type GCReport struct {
	DryRun            bool     `json:"dry_run"`
	ExpiredManifests  []string `json:"expired_manifests"`
	MarkedBlobs       int      `json:"marked_blobs"`
	DeletedBlobs      []string `json:"deleted_blobs"`
	DeletedBytes      int64    `json:"deleted_bytes"`
	SkippedYoungBlobs int      `json:"skipped_young_blobs"`
}

// GCOptions tune a collection.
type GCOptions struct {
	DryRun bool
	// Grace keeps unreferenced blobs younger than this: they may belong to a
	// push whose manifest has not arrived yet.
	Grace time.Duration
	Now   time.Time
}

// GC applies each repository's lifecycle policy, then deletes every blob no
// remaining manifest references. Manifest pushes wait while it marks and
// sweeps; blob uploads go on, and their young blobs are spared.
func (reg *Registry) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	rep := GCReport{DryRun: opts.DryRun, ExpiredManifests: []string{}, DeletedBlobs: []string{}}
	reg.gc.Lock()
	defer reg.gc.Unlock()

	repos, err := reg.repositories(ctx)
	if err != nil {
		return rep, err
	}
	for _, repo := range repos {
		expired, err := reg.expire(ctx, repo, opts)
		if err != nil {
			return rep, fmt.Errorf("lifecycle policy of %s: %w", repo, err)
		}
		rep.ExpiredManifests = append(rep.ExpiredManifests, expired...)
	}
	marked := map[digest.Digest]bool{}
	expiredSet := map[string]bool{}
	for _, e := range rep.ExpiredManifests {
		expiredSet[e] = true
	}
	for _, repo := range repos {
		if err := reg.mark(ctx, repo, marked, expiredSet); err != nil {
			return rep, fmt.Errorf("mark %s: %w", repo, err)
		}
	}
	rep.MarkedBlobs = len(marked)
	vacuum := storage.NewVacuum(ctx, reg.driver)
	err = reg.ns.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		if marked[d] {
			return nil
		}
		info, err := reg.driver.Stat(ctx, blobDataPath(d))
		if err != nil {
			var notFound storagedriver.PathNotFoundError
			if errors.As(err, &notFound) {
				return nil
			}
			return err
		}
		if opts.Now.Sub(info.ModTime()) < opts.Grace {
			rep.SkippedYoungBlobs++
			return nil
		}
		rep.DeletedBlobs = append(rep.DeletedBlobs, d.String())
		rep.DeletedBytes += info.Size()
		if opts.DryRun {
			return nil
		}
		return vacuum.RemoveBlob(d.String())
	})
	sort.Strings(rep.DeletedBlobs)
	return rep, err
}

func blobDataPath(d digest.Digest) string {
	hex := d.Encoded()
	return fmt.Sprintf("/docker/registry/v2/blobs/%s/%s/%s/data", d.Algorithm(), hex[:2], hex)
}

func (reg *Registry) repositories(ctx context.Context) ([]string, error) {
	var repos []string
	enum, ok := reg.ns.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("storage cannot enumerate repositories")
	}
	err := enum.Enumerate(ctx, func(name string) error {
		repos = append(repos, name)
		return nil
	})
	var notFound storagedriver.PathNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil // nothing pushed yet
	}
	return repos, err
}

func (reg *Registry) manifests(ctx context.Context, repo string) (distribution.Repository, distribution.ManifestService, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, nil, err
	}
	r, err := reg.ns.Repository(ctx, named)
	if err != nil {
		return nil, nil, err
	}
	ms, err := r.Manifests(ctx)
	return r, ms, err
}

// mark adds every manifest of repo and every blob they reference.
func (reg *Registry) mark(ctx context.Context, repo string, marked map[digest.Digest]bool, skip map[string]bool) error {
	_, ms, err := reg.manifests(ctx, repo)
	if err != nil {
		return err
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return errors.New("storage cannot enumerate manifests")
	}
	return enum.Enumerate(ctx, func(d digest.Digest) error {
		if skip[repo+"@"+d.String()] {
			return nil // about to be deleted by policy (dry run)
		}
		marked[d] = true
		m, err := ms.Get(ctx, d)
		if err != nil {
			return fmt.Errorf("read manifest %s: %w", d, err)
		}
		for _, ref := range m.References() {
			marked[ref.Digest] = true
		}
		return nil
	})
}

// expire applies keep-last and expire-untagged to one repository.
func (reg *Registry) expire(ctx context.Context, repo string, opts GCOptions) ([]string, error) {
	policy, err := reg.store.GetPolicy(ctx, repo)
	if err != nil {
		return nil, err
	}
	if policy.KeepLast == 0 && policy.ExpireUntaggedDays == 0 {
		return nil, nil
	}
	imgs, err := reg.store.ListImages(ctx, repo) // newest first
	if err != nil {
		return nil, err
	}
	var victims []store.Image
	tagged := 0
	for _, img := range imgs {
		if img.Subject != "" {
			continue // referrers live and die with their subject
		}
		if len(img.Tags) > 0 {
			tagged++
			if policy.KeepLast > 0 && tagged > policy.KeepLast {
				victims = append(victims, img)
			}
			continue
		}
		if policy.ExpireUntaggedDays > 0 && opts.Now.Sub(img.PushedAt) > time.Duration(policy.ExpireUntaggedDays)*24*time.Hour {
			victims = append(victims, img)
		}
	}
	var out []string
	for _, v := range victims {
		out = append(out, repo+"@"+v.Digest)
		if opts.DryRun {
			continue
		}
		if err := reg.deleteManifest(ctx, repo, v); err != nil {
			return out, err
		}
	}
	return out, nil
}

// deleteManifest removes a manifest, its tags and its referrers.
func (reg *Registry) deleteManifest(ctx context.Context, repo string, img store.Image) error {
	r, ms, err := reg.manifests(ctx, repo)
	if err != nil {
		return err
	}
	refs, err := reg.store.Referrers(ctx, repo, img.Digest)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if err := reg.deleteManifest(ctx, repo, ref); err != nil {
			return err
		}
	}
	for _, t := range img.Tags {
		if err := r.Tags(ctx).Untag(ctx, t); err != nil && !isUnknown(err) {
			return err
		}
	}
	if err := ms.Delete(ctx, digest.Digest(img.Digest)); err != nil && !isUnknown(err) {
		return err
	}
	return reg.store.DeleteImage(ctx, repo, img.Digest)
}

func isUnknown(err error) bool {
	var tagUnknown distribution.ErrTagUnknown
	var mfUnknown distribution.ErrManifestUnknownRevision
	var notFound storagedriver.PathNotFoundError
	return errors.As(err, &tagUnknown) || errors.As(err, &mfUnknown) || errors.As(err, &notFound)
}

// Remove deletes repo:tag (the tag only, when other tags keep the image) or
// repo@digest (the manifest with all its tags).
func (reg *Registry) Remove(ctx context.Context, repo, ref string) (string, error) {
	reg.gc.RLock()
	defer reg.gc.RUnlock()
	if strings.Contains(ref, ":") {
		img, err := reg.store.GetImage(ctx, repo, ref)
		if err != nil {
			return "", err
		}
		return "deleted " + repo + "@" + ref, reg.deleteManifest(ctx, repo, img)
	}
	d, err := reg.store.TagDigest(ctx, repo, ref)
	if err != nil {
		return "", err
	}
	img, err := reg.store.GetImage(ctx, repo, d)
	if err != nil {
		return "", err
	}
	if len(img.Tags) > 1 {
		r, _, err := reg.manifests(ctx, repo)
		if err != nil {
			return "", err
		}
		if err := r.Tags(ctx).Untag(ctx, ref); err != nil && !isUnknown(err) {
			return "", err
		}
		return "untagged " + repo + ":" + ref + " (the image keeps its other tags)", reg.store.DeleteTag(ctx, repo, ref)
	}
	return "deleted " + repo + ":" + ref + " (" + d + ")", reg.deleteManifest(ctx, repo, img)
}

// DeleteRepositories removes the repositories of an app that is being
// deleted (APP and every APP/NAME): their manifests, tags and policies, so
// an app made again under the name starts with an empty registry. Their
// blobs go at the next garbage collection. It returns the repositories
// removed.
func (reg *Registry) DeleteRepositories(ctx context.Context, app string) ([]string, error) {
	reg.gc.Lock()
	defer reg.gc.Unlock()
	repos, err := reg.repositories(ctx)
	if err != nil {
		return nil, err
	}
	vacuum := storage.NewVacuum(ctx, reg.driver)
	var removed []string
	for _, repo := range repos {
		if repo != app && !strings.HasPrefix(repo, app+"/") {
			continue
		}
		if err := vacuum.RemoveRepository(repo); err != nil {
			return removed, fmt.Errorf("delete repository %s: %w", repo, err)
		}
		removed = append(removed, repo)
	}
	return removed, reg.store.DeleteRepositories(ctx, app)
}
