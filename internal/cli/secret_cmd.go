package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func secretCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Manage secrets injected into tasks and builds (values are never shown)"}

	var app, env, fromFile string
	set := &cobra.Command{
		Use:   "set NAME [--app A] [--env E] [--from-file F]",
		Short: "Store a new version of a secret, read from stdin or a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var value []byte
			if fromFile != "" {
				value, err = os.ReadFile(fromFile)
			} else {
				if f, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(f) {
					fmt.Fprintln(cmd.ErrOrStderr(), "Reading the secret value from stdin; end with Ctrl-D")
				}
				value, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			}
			if err != nil {
				return err
			}
			// A value piped with echo ends in a newline that is not part of it.
			v := strings.TrimSuffix(strings.TrimSuffix(string(value), "\n"), "\r")
			var sec store.Secret
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/secrets/"+escapeName(args[0]), map[string]string{"app": app, "env": env, "value": v}, &sec); err != nil {
				return err
			}
			if p.json {
				return p.emit(sec, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Stored secret %s%s, version %d\n", sec.Name, scope(sec.App, sec.Env), sec.Version)
			return nil
		},
	}
	set.Flags().StringVar(&app, "app", "", "scope the secret to an app (default: global)")
	set.Flags().StringVar(&env, "env", "", "scope the secret to one environment of the app")
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file instead of stdin")

	var listApp string
	list := &cobra.Command{
		Use:   "list [--app A]",
		Short: "List secrets: names, scopes, versions and update times",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return read(cmd, "/api/v1/secrets?app="+url.QueryEscape(listApp), func(w *tabwriter.Writer, list []store.Secret) {
				row(w, "NAME", "APP", "ENV", "VERSION", "UPDATED", "BY")
				for _, s := range list {
					row(w, s.Name, orDash(s.App), orDash(s.Env), s.Version, humanTime(s.UpdatedAt), s.UpdatedBy)
				}
			})
		},
	}
	list.Flags().StringVar(&listApp, "app", "", "only this app's secrets and global ones")

	var rmApp, rmEnv string
	rm := &cobra.Command{
		Use:   "rm NAME [--app A] [--env E]",
		Short: "Remove a secret and all its versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			q := url.Values{"app": {rmApp}, "env": {rmEnv}}
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/secrets/"+escapeName(args[0])+"?"+q.Encode(), nil, nil); err != nil {
				// A secret is named with its scope: point at the scopes it has.
				var list []store.Secret
				var ce *client.Error
				if errors.As(err, &ce) && ce.Status == http.StatusNotFound && c.Do(cmd.Context(), "GET", "/api/v1/secrets", nil, &list) == nil {
					var hints []string
					for _, sec := range list {
						if sec.Name == args[0] {
							hints = append(hints, scopeFlags(sec.App, sec.Env))
						}
					}
					if len(hints) > 0 {
						return fmt.Errorf("%w; %s exists with: %s", err, args[0], strings.Join(hints, "; "))
					}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed secret %s%s\n", args[0], scope(rmApp, rmEnv))
			return nil
		},
	}
	rm.Flags().StringVar(&rmApp, "app", "", "the app the secret is scoped to")
	rm.Flags().StringVar(&rmEnv, "env", "", "the environment the secret is scoped to")

	cmd.AddCommand(set, list, rm)
	return cmd
}

// escapeName escapes each segment of a secret name that may hold slashes.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func scope(app, env string) string {
	switch {
	case app == "":
		return " (global)"
	case env == "":
		return " for app " + app
	}
	return " for app " + app + " environment " + env
}

// scopeFlags are the flags that name a secret's scope ("global" for none).
func scopeFlags(app, env string) string {
	var f []string
	if app != "" {
		f = append(f, "--app "+app)
	}
	if env != "" {
		f = append(f, "--env "+env)
	}
	if len(f) == 0 {
		return "no --app (global)"
	}
	return strings.Join(f, " ")
}
