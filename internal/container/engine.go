// Package container drives the local Docker engine through its API: image
// builds and pushes for the pipeline, and containers for build actions and
// (later) tasks. The SDK negotiates the API version, so an engine older than
// the library still works.
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
)

// Engine is a connection to the Docker engine.
type Engine struct {
	cli *client.Client
	// builder is the image builder: BuildKit unless the engine's ping
	// says it has only the classic one.
	builder build.BuilderVersion
}

var (
	shared    *Engine
	sharedErr error
	once      sync.Once
)

// Connect returns the engine named by DOCKER_HOST (default: the local
// socket), checking once that it answers.
func Connect(ctx context.Context) (*Engine, error) {
	once.Do(func() {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			sharedErr = fmt.Errorf("docker client: %w", err)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ping, err := cli.Ping(pctx)
		if err != nil {
			sharedErr = fmt.Errorf("the Docker engine does not answer (%w); start it or set DOCKER_HOST", err)
			return
		}
		// Negotiate now, before the client is shared: the SDK's lazy
		// negotiation on a first request writes the version while other
		// goroutines' requests read it (a data race the race detector
		// reported between the reconciler and an API handler).
		cli.NegotiateAPIVersionPing(ping)
		shared = &Engine{cli: cli, builder: builderFor(ping)}
	})
	return shared, sharedErr
}

// Client exposes the SDK client to packages that manage containers.
func (e *Engine) Client() *client.Client { return e.cli }

// BuildOptions describe one image build.
type BuildOptions struct {
	Dockerfile string
	Target     string
	BuildArgs  map[string]string
	Tags       []string
	Labels     map[string]string
	// CacheScope, when set, keeps the build's cache mounts (RUN
	// --mount=type=cache) apart from every other scope's: Slipway gives
	// each app and ref its own (see cachemounts.go).
	CacheScope string
}

// streamMessage is one line of the engine's build or push progress.
type streamMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// follow copies the engine's JSON progress stream to log and returns the
// aux messages; an error message in the stream is returned as the error.
func follow(r io.Reader, log io.Writer) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	var aux []json.RawMessage
	var trace *buildkitLog
	for {
		var m streamMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return aux, nil
		} else if err != nil {
			return aux, fmt.Errorf("read engine progress: %w", err)
		}
		switch {
		case m.Error != "":
			return aux, errors.New(strings.TrimSpace(m.Error))
		case m.ID == buildkitTraceID:
			var msg []byte // base64 in JSON
			if err := json.Unmarshal(m.Aux, &msg); err != nil {
				return aux, fmt.Errorf("read BuildKit progress: %w", err)
			}
			if trace == nil {
				trace = newBuildkitLog(log)
			}
			if err := trace.write(msg); err != nil {
				return aux, fmt.Errorf("read BuildKit progress: %w", err)
			}
			continue
		case m.Stream != "":
			io.WriteString(log, m.Stream)
		case m.Status != "" && m.Progress == "":
			if m.ID != "" {
				fmt.Fprintf(log, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(log, m.Status)
			}
		}
		if len(m.Aux) > 0 {
			aux = append(aux, m.Aux)
		}
	}
}

// Build builds an image from a tar build context; the builder's output goes
// to log and its failure message becomes the error.
func (e *Engine) Build(ctx context.Context, buildContext io.Reader, opts BuildOptions, log io.Writer) (string, error) {
	args := map[string]*string{}
	for k, v := range opts.BuildArgs {
		if opts.CacheScope != "" && strings.EqualFold(k, "BUILDKIT_SYNTAX") {
			return "", fmt.Errorf("build argument %s: %w; Slipway builds with Docker's own, which keeps cache mounts apart per app and ref", k, ErrOwnFrontend)
		}
		v := v
		args[k] = &v
	}
	if opts.CacheScope != "" {
		scoped, name := scopeContext(buildContext, opts.Dockerfile, opts.CacheScope)
		defer scoped.Close()
		buildContext, opts.Dockerfile = scoped, name
	}
	resp, err := e.cli.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		Tags: opts.Tags, Dockerfile: opts.Dockerfile, Target: opts.Target, BuildArgs: args,
		Labels: opts.Labels, Remove: true, ForceRemove: true, Version: e.builder,
	})
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	defer resp.Body.Close()
	aux, err := follow(resp.Body, log)
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	for _, a := range aux {
		var id struct{ ID string }
		if json.Unmarshal(a, &id) == nil && id.ID != "" {
			return id.ID, nil
		}
	}
	if len(opts.Tags) > 0 {
		img, err := e.cli.ImageInspect(ctx, opts.Tags[0])
		if err == nil {
			return img.ID, nil
		}
	}
	return "", errors.New("docker build: the engine reported no image id")
}

// builderFor picks BuildKit unless the engine says it has only the classic
// builder: the classic one commits a container per instruction, about 3 s
// for a five-line Dockerfile FROM scratch here, where BuildKit takes 0.2 s.
// Linux engines since 18.09 build with BuildKit through the API whether or
// not it is their CLI's default (they then send no Builder-Version), and
// the build context goes up as a tar either way: no BuildKit session is
// needed. SLIPWAY_DOCKER_BUILDER=classic forces the classic builder.
func builderFor(p types.Ping) build.BuilderVersion {
	if os.Getenv("SLIPWAY_DOCKER_BUILDER") == "classic" || p.BuilderVersion == build.BuilderV1 || p.OSType == "windows" {
		return build.BuilderV1
	}
	return build.BuilderBuildKit
}

// Pushed is what a push stored in the registry.
type Pushed struct {
	Digest string
	Size   int64
}

// Push pushes ref with basic credentials and returns the manifest digest.
func (e *Engine) Push(ctx context.Context, ref, user, password string, log io.Writer) (Pushed, error) {
	host, _, _ := strings.Cut(ref, "/")
	auth, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: password, ServerAddress: host})
	if err != nil {
		return Pushed{}, err
	}
	rc, err := e.cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return Pushed{}, fmt.Errorf("docker push %s: %w", ref, err)
	}
	defer rc.Close()
	aux, err := follow(rc, log)
	if err != nil {
		return Pushed{}, fmt.Errorf("docker push %s: %w", ref, err)
	}
	for _, a := range aux {
		var p struct {
			Digest string
			Size   int64
		}
		if json.Unmarshal(a, &p) == nil && p.Digest != "" {
			return Pushed{Digest: p.Digest, Size: p.Size}, nil
		}
	}
	return Pushed{}, fmt.Errorf("docker push %s: the engine reported no digest", ref)
}

// Tag adds a tag to an image.
func (e *Engine) Tag(ctx context.Context, source, target string) error {
	return e.cli.ImageTag(ctx, source, target)
}

// LabelApp names the app on everything Slipway makes on the engine: task
// containers and networks, build containers and the images it builds.
const LabelApp = "slipway.app"

// LabelInstallation names the Slipway installation (data directory) that
// made a container, network or image, so servers sharing one engine, and
// their cleanups, tell theirs apart.
const LabelInstallation = "slipway.installation"

// Labels are what Slipway puts on a container or image it makes for app:
// the app, the installation when known, and the pairs in more (key, value, …).
func Labels(app, installation string, more ...string) map[string]string {
	l := map[string]string{LabelApp: app}
	if installation != "" {
		l[LabelInstallation] = installation
	}
	for i := 0; i+1 < len(more); i += 2 {
		l[more[i]] = more[i+1]
	}
	return l
}

// RemoveRegistryImages removes the engine's copies of images that Slipway
// built (they carry the slipway.app label) and tagged under a registry
// host, for when that registry goes away with its data directory.
func (e *Engine) RemoveRegistryImages(ctx context.Context, host string) error {
	imgs, err := e.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelApp))})
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	var errs []error
	for _, img := range imgs {
		for _, tag := range img.RepoTags {
			// By tag, not by id: an image also tagged elsewhere only loses this tag.
			if strings.HasPrefix(tag, host+"/") {
				if _, err := e.cli.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil {
					errs = append(errs, fmt.Errorf("remove image %s: %w", tag, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// CreateContext is for an engine call that creates a network or a container
// (or starts one). The engine may still carry out a create whose request the
// client gave up on, leaving something nobody removes; so the call runs to
// completion, bounded, even after ctx ends, and the caller, who then knows
// what was made, checks ctx between steps.
func CreateContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}
