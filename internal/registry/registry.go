// Package registry serves the OCI Distribution API on top of the CNCF
// distribution library, and adds what Slipway needs in front of it: push
// records, tag immutability, the referrers API, lifecycle policy and a
// garbage collector that is safe while pushes continue.
package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the default storage driver
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/slipway-dev/slipway/internal/store"
)

// MaxManifestBytes is the largest manifest accepted (as distribution's own limit).
const MaxManifestBytes = 4 << 20

// Store is what the registry records outside the blob storage.
type Store interface {
	store.ImageStore
	GetApp(ctx context.Context, name string) (store.App, error)
}

// Config selects the storage driver: "filesystem" with a rootdirectory now,
// any driver distribution knows (s3aws, …) by configuration later.
type Config struct {
	Driver     string
	Parameters map[string]any
	Log        *slog.Logger
}

// Registry is the OCI registry handler and its maintenance operations.
type Registry struct {
	app    http.Handler
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
	store  Store
	log    *slog.Logger

	// gc is held exclusively while garbage collection marks and sweeps, and
	// shared by manifest pushes, so no manifest can commit mid-sweep.
	gc sync.RWMutex
	// tagLocks holds a *sync.Mutex per repository. A tag push holds it from
	// the immutability check to the recorded write: two pushes to one new
	// tag would otherwise both see it absent and both land.
	tagLocks sync.Map
}

// lockTags serialises tag writes in repo; call the result to unlock.
func (reg *Registry) lockTags(repo string) func() {
	m, _ := reg.tagLocks.LoadOrStore(repo, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// New builds the registry. distribution panics on a bad configuration; that
// becomes an error here so the server reports it at start.
func New(ctx context.Context, cfg Config, st Store) (reg *Registry, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry configuration: %v", p)
		}
	}()
	// distribution logs through logrus, and logs every client error (a 404 on
	// a manifest HEAD) at error level; Slipway's access log already records
	// each request with its status, so this output is dropped.
	logrus.SetOutput(io.Discard)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	params := configuration.Parameters(cfg.Parameters)
	conf := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			cfg.Driver:    params,
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
			// Blobs are served through the registry, never by a redirect to
			// a presigned S3 URL a client may not reach.
			"redirect": configuration.Parameters{"disable": true},
		},
	}
	conf.Log.AccessLog.Disabled = true
	conf.Log.Level = "warn"
	conf.HTTP.Secret = hex.EncodeToString(secret)
	dctx := ctx
	driver, err := factory.Create(dctx, cfg.Driver, cfg.Parameters)
	if err != nil {
		return nil, fmt.Errorf("registry storage driver %s: %w", cfg.Driver, err)
	}
	ns, err := storage.NewRegistry(dctx, driver, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	app := handlers.NewApp(dctx, conf)
	return &Registry{app: app, driver: driver, ns: ns, store: st, log: cfg.Log}, nil
}

var (
	manifestPath  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	referrersPath = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
	repoPath      = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs|tags|referrers)(/.*)?$`)
)

// ociError writes the error body the distribution spec defines.
func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// OCIError lets other packages answer /v2/ requests in the spec's format.
func OCIError(w http.ResponseWriter, status int, code, msg string) { ociError(w, status, code, msg) }

// Serve answers one /v2/ request for the authenticated caller.
func (reg *Registry) Serve(w http.ResponseWriter, r *http.Request, caller string) {
	if m := repoPath.FindStringSubmatch(r.URL.Path); m != nil {
		if err := reg.checkRepo(r.Context(), m[1]); err != nil {
			ociError(w, http.StatusNotFound, "NAME_UNKNOWN", err.Error())
			return
		}
	}
	if m := referrersPath.FindStringSubmatch(r.URL.Path); m != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		reg.serveReferrers(w, r, m[1], m[2])
		return
	}
	if m := manifestPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPut {
		reg.putManifest(w, r, m[1], m[2], caller)
		return
	}
	if m := manifestPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodDelete {
		reg.gc.RLock()
		defer reg.gc.RUnlock()
		rec := &statusWriter{ResponseWriter: w}
		reg.app.ServeHTTP(rec, r)
		if rec.status == http.StatusAccepted {
			reg.forget(r.Context(), m[1], m[2])
		}
		return
	}
	reg.app.ServeHTTP(w, r)
}

// checkRepo allows repositories named after an app, or nested under one.
func (reg *Registry) checkRepo(ctx context.Context, repo string) error {
	app, _, _ := strings.Cut(repo, "/")
	if _, err := reg.store.GetApp(ctx, app); err != nil {
		return fmt.Errorf("repository %s does not belong to an app; push to <registry>/APP or <registry>/APP/NAME (create the app first)", repo)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	onWrite func(w http.ResponseWriter, status int)
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
		if s.onWrite != nil {
			s.onWrite(s.ResponseWriter, code)
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestDoc struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Manifests    []descriptor      `json:"manifests"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, repo, ref, caller string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestBytes+1))
	if err != nil {
		ociError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read manifest: "+err.Error())
		return
	}
	if len(body) > MaxManifestBytes {
		ociError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest is over the %d MiB limit", MaxManifestBytes>>20))
		return
	}
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		ociError(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest is not valid JSON: "+err.Error())
		return
	}
	mediaType := doc.MediaType
	if mediaType == "" {
		mediaType = r.Header.Get("Content-Type")
	}
	dgst := digest.FromBytes(body)
	isTag := !strings.Contains(ref, ":")

	reg.gc.RLock()
	defer reg.gc.RUnlock()
	// Checked again under the lock: an app deleted since Serve checked has
	// had its repositories removed, and nothing may land in them now.
	if err := reg.checkRepo(r.Context(), repo); err != nil {
		ociError(w, http.StatusNotFound, "NAME_UNKNOWN", err.Error())
		return
	}
	if isTag {
		// Held until the tag is recorded, so the storage and the index
		// also agree on which of two concurrent pushes came last.
		defer reg.lockTags(repo)()
		if err := reg.checkImmutable(r.Context(), repo, ref, dgst); err != nil {
			ociError(w, http.StatusConflict, "DENIED", err.Error())
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := &statusWriter{ResponseWriter: w}
	if doc.Subject != nil {
		rec.onWrite = func(w http.ResponseWriter, status int) {
			if status == http.StatusCreated {
				w.Header().Set("OCI-Subject", doc.Subject.Digest)
			}
		}
	}
	reg.app.ServeHTTP(rec, r)
	if rec.status != http.StatusCreated {
		return
	}
	img := store.Image{Repo: repo, Digest: dgst.String(), MediaType: mediaType, ArtifactType: doc.ArtifactType,
		Size: int64(len(body)), Annotations: doc.Annotations, PushedBy: caller}
	if img.ArtifactType == "" && doc.Config != nil && doc.Config.MediaType != "application/vnd.oci.image.config.v1+json" &&
		doc.Config.MediaType != "application/vnd.docker.container.image.v1+json" {
		img.ArtifactType = doc.Config.MediaType // the spec's fallback for artifacts
	}
	if doc.Config != nil {
		img.Size += doc.Config.Size
	}
	for _, l := range doc.Layers {
		img.Size += l.Size
	}
	for _, m := range doc.Manifests {
		img.Size += m.Size
	}
	if doc.Subject != nil {
		img.Subject = doc.Subject.Digest
	}
	tag := ""
	if isTag {
		tag = ref
	}
	if err := reg.store.RecordImage(context.WithoutCancel(r.Context()), img, tag); err != nil {
		reg.log.Error("record pushed image", "repository", repo, "digest", img.Digest, "err", err)
	}
}

func (reg *Registry) checkImmutable(ctx context.Context, repo, tag string, dgst digest.Digest) error {
	policy, err := reg.store.GetPolicy(ctx, repo)
	if err != nil || !policy.ImmutableTags {
		return err
	}
	current, err := reg.tagDigest(ctx, repo, tag)
	if err != nil {
		// Refused rather than allowed: an unreadable tag may well exist.
		return fmt.Errorf("cannot read tag %s of repository %s to check that its tags are immutable: %w; push again", tag, repo, err)
	}
	if current == "" || current == dgst {
		return nil // a new tag, or the same content again
	}
	return fmt.Errorf("tag %s already exists in repository %s and its tags are immutable; push a new tag (or turn immutability off: slipway image policy %s --immutable-tags=false)", tag, repo, repo)
}

// tagDigest asks the storage, which is the truth for pulls.
func (reg *Registry) tagDigest(ctx context.Context, repo, tag string) (digest.Digest, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return "", err
	}
	r, err := reg.ns.Repository(ctx, named)
	if err != nil {
		return "", err
	}
	desc, err := r.Tags(ctx).Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	if errors.As(err, &unknown) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return desc.Digest, nil
}

// forget removes the index entry of a manifest (or tag) deleted through the API.
func (reg *Registry) forget(ctx context.Context, repo, ref string) {
	var err error
	if strings.Contains(ref, ":") {
		err = reg.store.DeleteImage(ctx, repo, ref)
	} else {
		err = reg.store.DeleteTag(ctx, repo, ref)
	}
	if err != nil {
		reg.log.Error("forget deleted manifest", "repository", repo, "reference", ref, "err", err)
	}
}

// serveReferrers answers GET /v2/<name>/referrers/<digest> with an image
// index of the manifests whose subject is digest.
func (reg *Registry) serveReferrers(w http.ResponseWriter, r *http.Request, repo, subject string) {
	if _, err := digest.Parse(subject); err != nil {
		ociError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("%q is not a digest", subject))
		return
	}
	imgs, err := reg.store.Referrers(r.Context(), repo, subject)
	if err != nil {
		ociError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	filter := r.URL.Query().Get("artifactType")
	manifests := []descriptor{}
	for _, img := range imgs {
		if filter != "" && img.ArtifactType != filter {
			continue
		}
		size, err := reg.manifestSize(r.Context(), img.Digest)
		if err != nil {
			continue // deleted meanwhile
		}
		manifests = append(manifests, descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: size, ArtifactType: img.ArtifactType, Annotations: img.Annotations})
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	})
}

func (reg *Registry) manifestSize(ctx context.Context, dgst string) (int64, error) {
	desc, err := reg.ns.BlobStatter().Stat(ctx, digest.Digest(dgst))
	if err != nil {
		return 0, err
	}
	return desc.Size, nil
}
