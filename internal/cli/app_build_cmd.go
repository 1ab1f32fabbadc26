package cli

import (
	"errors"
	"fmt"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

// appSetBuildCmd is `slipway app set-build`: where an app's builds run and
// whether they reach the Docker engine (admin only).
func appSetBuildCmd() *cobra.Command {
	var executor string
	var docker bool
	cmd := &cobra.Command{
		Use:   "set-build APP [--docker-access=true|false] [--executor sandbox|host]",
		Short: "Set where an app's builds run and whether they may use the Docker engine (admin)",
		Long: `Builds, invoke commands and deployment hooks run in a sandbox by default: a
container that sees only its own workspace, its app's build home and, read-only,
the host's toolchains under /usr.

--docker-access=true gives them the Docker engine's socket, as CodeBuild's
privileged mode does, for buildspecs that run docker build and docker push.
Whoever can push to the app can then do anything root can do on this host.

--executor host runs them directly on the host as the server's user, which
can read the data directory (tokens, master key, every secret): only for
repositories whose every committer you would trust with admin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("docker-access") {
				body["docker_access"] = docker
			}
			if cmd.Flags().Changed("executor") {
				body["executor"] = executor
			}
			if len(body) == 0 {
				return errors.New("nothing to set: give --docker-access=true|false or --executor sandbox|host")
			}
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var a store.App
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/apps/"+pathEscape(args[0])+"/build", body, &a); err != nil {
				return err
			}
			if p.json {
				return p.emit(a, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "App %s: builds run %s\n", a.Name, buildLine(a.Build))
			return nil
		},
	}
	cmd.Flags().BoolVar(&docker, "docker-access", false, "let builds use the Docker engine (equivalent to root on the host)")
	cmd.Flags().StringVar(&executor, "executor", "", "sandbox (default) or host")
	return cmd
}

// buildLine says in words where an app's builds run.
func buildLine(b store.BuildSettings) string {
	where := "in a sandbox (a container that sees only its workspace)"
	if b.Executor == store.ExecutorHost {
		where = "on the host as the server's user (can read the data directory)"
	}
	if b.DockerAccess {
		where += ", with the Docker engine (equivalent to root on the host)"
	}
	return where
}
