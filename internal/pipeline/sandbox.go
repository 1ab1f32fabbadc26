package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/sandbox"
	"github.com/slipway-dev/slipway/internal/store"
)

// BuildTokenPrefix names the tokens minted for builds; names under
// "system:" are the server's own and cannot be taken by a user.
const BuildTokenPrefix = "system:build:"

// buildToken mints the build's own registry credential: it may push and
// pull its app's repositories and nothing else, and it is deleted when the
// action ends (or, after a crash, when the next server starts).
func (e *Engine) buildToken(ctx context.Context, r store.Run, row store.Action) (string, func(), error) {
	plain, hash := auth.NewToken()
	t := store.Token{ID: auth.NewID("tok_"), Name: fmt.Sprintf("%s%s:%d:%d", BuildTokenPrefix, r.App, r.ID, row.ID),
		Role: auth.Deployer.String(), App: r.App, RegistryOnly: true}
	if _, err := e.Store.CreateToken(ctx, t, hash); err != nil {
		return "", nil, fmt.Errorf("mint the build's registry token: %w", err)
	}
	return plain, func() {
		if err := e.Store.DeleteToken(context.WithoutCancel(ctx), t.ID); err != nil {
			e.Log.Error("delete a build token", "token", t.Name, "err", err)
		}
	}, nil
}

// passThrough are the server's variables a sandboxed build also gets: the
// module proxies and HTTP proxies the host's toolchains are set up with.
var passThrough = []string{"LANG", "TZ", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOTOOLCHAIN",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// sandboxEnv is the base environment of a sandboxed build (the host
// executor inherits the server's PATH and HOME instead).
func (e *Engine) sandboxEnv(a Action, app store.App, onHost bool) []string {
	if onHost {
		return nil
	}
	env := []string{"HOME=" + sandbox.Home}
	if a.Image == "" { // the host's toolchains, under the host's PATH
		path := os.Getenv("PATH")
		if app.Build.DockerAccess {
			path = sandbox.ShimDir + ":" + path // docker build labels what it makes as the app's
		}
		env = append(env, "PATH="+path)
		for _, k := range passThrough {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	return env
}

// startSandbox starts the container an action's commands run in.
func (e *Engine) startSandbox(ctx context.Context, r store.Run, a Action, app store.App, workspace string, logs io.Writer) (*container.Box, error) {
	eng, err := container.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if app.Build.DockerAccess {
		fmt.Fprintf(logs, "[slipway] This build may use the Docker engine (app setting docker-access, given by an admin)\n")
	}
	if a.Image != "" {
		// An image Slipway built for another app holds that app's code
		// (and whatever its build baked in): not this build's to run.
		labels, err := eng.ImageLabels(ctx, a.Image)
		if err != nil {
			return nil, err
		}
		if owner := labels[container.LabelApp]; owner != "" && owner != r.App {
			return nil, fmt.Errorf("image: %s is app %s's image; a build may run images of its own app or images not made by Slipway", a.Image, owner)
		}
	}
	home, err := e.buildHome(ctx, r)
	if err != nil {
		return nil, err
	}
	return sandbox.Start(ctx, eng, sandbox.Options{
		Image: a.Image, Workspace: workspace, HomeDir: home,
		Docker: app.Build.DockerAccess, Hide: []string{e.DataDir}, GoCacheSeed: sandbox.GoCacheSeed(), Log: logs,
		Labels: container.Labels(r.App, e.Installation, "slipway.run", strconv.FormatInt(r.ID, 10), "slipway.action", a.Name),
	})
}

// removeLeftovers deletes what builds of a stopped server left behind:
// their registry tokens and their containers.
func (e *Engine) removeLeftovers(ctx context.Context) {
	if n, err := e.Store.DeleteTokensNamed(ctx, BuildTokenPrefix); err != nil {
		e.Log.Error("delete the build tokens of interrupted actions", "err", err)
	} else if n > 0 {
		e.Log.Warn("deleted the build tokens of interrupted actions", "tokens", n)
	}
	if e.Installation == "" {
		return
	}
	eng, err := container.Connect(ctx)
	if err != nil {
		return // no engine, so no containers either
	}
	n, err := eng.RemoveLabelled(ctx, container.LabelInstallation+"="+e.Installation, "slipway.run")
	if err != nil {
		e.Log.Error("remove the containers of interrupted actions", "err", err)
	} else if n > 0 {
		e.Log.Warn("removed the containers of interrupted actions", "containers", n)
	}
}
