package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/store"
)

// Registry says where the built-in registry is and how the engine signs in.
type Registry struct {
	Host  string // host:port as the Docker engine reaches it
	User  string
	Token string
}

// ImageDetail is CodePipeline's imageDetail.json.
type ImageDetail struct {
	ImageURI         string   `json:"ImageURI"`
	ImageDigest      string   `json:"ImageDigest"`
	ImageTags        []string `json:"ImageTags"`
	RepositoryName   string   `json:"RepositoryName"`
	RegistryID       string   `json:"RegistryId"`
	ImagePushedAt    string   `json:"ImagePushedAt"`
	ImageSizeInBytes int64    `json:"ImageSizeInBytes"`
}

// ImageDefinition is one entry of imagedefinitions.json.
type ImageDefinition struct {
	Name     string `json:"name"`
	ImageURI string `json:"imageUri"`
}

func (e *Engine) registry() (Registry, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Registry.Host == "" {
		return e.Registry, fmt.Errorf("the registry address is not known yet (the server has not started listening)")
	}
	return e.Registry, nil
}

// SetRegistry tells the engine where the registry listens.
func (e *Engine) SetRegistry(r Registry) {
	e.mu.Lock()
	e.Registry = r
	e.mu.Unlock()
}

// performImage builds the Dockerfile in the primary input through the Docker
// engine, pushes every tag to the built-in registry and outputs
// imageDetail.json and imagedefinitions.json.
func (e *Engine) performImage(ctx context.Context, r store.Run, a Action, row store.Action, logs io.Writer) (*int, string) {
	reg, err := e.registry()
	if err != nil {
		return nil, err.Error()
	}
	eng, err := container.Connect(ctx)
	if err != nil {
		return nil, err.Error()
	}
	repo := a.Repository
	if repo == "" {
		repo = r.App
	}
	if repo != r.App && !strings.HasPrefix(repo, r.App+"/") {
		return nil, fmt.Sprintf("repository %s does not belong to app %s; use %s or %s/NAME", repo, r.App, r.App, r.App)
	}
	tags := []string{r.Commit}
	if t, ok := strings.CutPrefix(r.Ref, "refs/tags/"); ok && slipwayfile.IsImageTag(t) {
		tags = append(tags, t)
	}
	for _, t := range a.Tags {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	refs := make([]string, len(tags))
	for i, t := range tags {
		refs[i] = reg.Host + "/" + repo + ":" + t
	}
	input := slipwayfile.SourceArtifact
	if len(a.Inputs) > 0 {
		input = a.Inputs[0]
	}
	ctxTar, err := e.openArtifact(ctx, r.ID, input)
	if err != nil {
		return nil, err.Error()
	}
	defer ctxTar.Close()
	scope, err := e.imageCacheScope(ctx, r)
	if err != nil {
		return nil, err.Error()
	}
	fmt.Fprintf(logs, "[slipway] Building %s from %s (%s)\n", strings.Join(refs, ", "), input, a.Dockerfile)
	_, err = eng.Build(ctx, ctxTar, container.BuildOptions{
		Dockerfile: a.Dockerfile, Target: a.Target, BuildArgs: a.BuildArgs, Tags: refs,
		Labels:     container.Labels(r.App, e.Installation, "slipway.commit", r.Commit),
		CacheScope: scope,
	}, logs)
	if err != nil {
		return nil, err.Error()
	}
	var pushed container.Pushed
	for _, ref := range refs {
		fmt.Fprintf(logs, "[slipway] Pushing %s\n", ref)
		if pushed, err = eng.Push(ctx, ref, reg.User, reg.Token, logs); err != nil {
			return nil, err.Error()
		}
	}
	size := pushed.Size
	if img, err := e.Store.GetImage(ctx, repo, pushed.Digest); err == nil {
		size = img.Size
	}
	uri := reg.Host + "/" + repo + "@" + pushed.Digest
	detail := ImageDetail{ImageURI: uri, ImageDigest: pushed.Digest, ImageTags: tags, RepositoryName: repo, RegistryID: reg.Host,
		ImagePushedAt: time.Now().UTC().Format(time.RFC3339), ImageSizeInBytes: size}
	name := a.ContainerName
	if name == "" {
		name = r.App
	}
	fmt.Fprintf(logs, "[slipway] Pushed %s (%d bytes)\n", uri, size)
	if err := e.Store.PutVariables(ctx, r.ID, []store.Variable{
		{Action: a.Name, Name: "IMAGE_URI", Value: uri}, {Action: a.Name, Name: "IMAGE_DIGEST", Value: pushed.Digest},
	}); err != nil {
		return nil, err.Error()
	}
	if len(a.Outputs) == 0 {
		return nil, ""
	}
	dir := filepath.Join(e.WorkRoot, fmt.Sprintf("run-%d", r.ID), fmt.Sprintf("action-%d", row.ID))
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err.Error()
	}
	files := []artifact.File{}
	for fname, v := range map[string]any{"imageDetail.json": detail, "imagedefinitions.json": []ImageDefinition{{Name: name, ImageURI: uri}}} {
		b, _ := json.MarshalIndent(v, "", "  ")
		p := filepath.Join(dir, fname)
		if err := os.WriteFile(p, append(b, '\n'), 0o600); err != nil {
			return nil, err.Error()
		}
		files = append(files, artifact.File{Name: fname, Path: p})
	}
	if err := e.putOutput(ctx, r, row, a.Outputs[0], files, logs); err != nil {
		return nil, err.Error()
	}
	return nil, ""
}

func (e *Engine) openArtifact(ctx context.Context, runID int64, name string) (io.ReadCloser, error) {
	arts, err := e.Store.ListArtifacts(ctx, runID)
	if err != nil {
		return nil, err
	}
	for _, a := range arts {
		if a.Name == name {
			return e.Artifacts.Open(ctx, a.SHA256)
		}
	}
	return nil, fmt.Errorf("input artifact %s was not produced", name)
}

// dockerEnv logs a build's own docker commands in to the built-in registry
// with the build's token (its app's repositories only): DOCKER_CONFIG is
// workspace/docker on the host, seen as visible/docker by the build.
func (e *Engine) dockerEnv(r store.Run, workspace, visible, token string) ([]string, error) {
	reg, err := e.registry()
	if err != nil {
		return nil, nil // no registry yet: builds still run, without docker credentials
	}
	dir := filepath.Join(workspace, "docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"auth": basicAuth(reg.User, token)}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		return nil, err
	}
	return []string{"DOCKER_CONFIG=" + path.Join(visible, "docker"), "REPOSITORY_URI=" + reg.Host + "/" + r.App, "IMAGE_REPO_NAME=" + r.App,
		"IMAGE_TAG=" + r.Commit, "SLIPWAY_REGISTRY=" + reg.Host}, nil
}

// CurrentRegistry returns where the registry is, as last set.
func (e *Engine) CurrentRegistry() Registry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Registry
}

// basicAuth is the "auth" of a Docker config: base64 of user:token. A build
// that prints its config.json prints this, so logs mask it as well as the
// token.
func basicAuth(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
}

// credentialForms are the forms of a registry credential a log may show.
func (e *Engine) credentialForms(token string) []string {
	forms := []string{token}
	if reg, err := e.registry(); err == nil {
		forms = append(forms, basicAuth(reg.User, token))
	}
	return forms
}
