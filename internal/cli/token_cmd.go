package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (admin)"}

	var name, role, app, env string
	create := &cobra.Command{
		Use:   "create --name NAME --role admin|deployer|viewer [--app APP [--env ENV]]",
		Short: "Create a token; its secret is printed once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var tok server.CreatedToken
			if err := c.Do(cmd.Context(), "POST", "/api/v1/tokens", map[string]string{"name": name, "role": role, "app": app, "env": env}, &tok); err != nil {
				return err
			}
			if p.json {
				return p.emit(tok, nil)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %s (%s, role %s). Store it now; it is not shown again:\n", tok.Name, tok.ID, tok.Role)
			fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "token name (required)")
	create.Flags().StringVar(&role, "role", "viewer", "admin, deployer or viewer")
	create.Flags().StringVar(&app, "app", "", "limit the token to one app's repositories, runs, services and secrets")
	create.Flags().StringVar(&env, "env", "", "with --app: limit it further to one environment's services and deployments (elsewhere it only reads)")
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return read(cmd, "/api/v1/tokens", func(w *tabwriter.Writer, toks []store.Token) {
				row(w, "ID", "NAME", "ROLE", "SCOPE", "CREATED", "LAST USED", "REVOKED")
				for _, t := range toks {
					scope := orDash(t.App)
					if t.Env != "" {
						scope += "/" + t.Env
					}
					row(w, t.ID, t.Name, t.Role, scope, humanTime(t.CreatedAt), ago(t.LastUsedAt), ago(t.RevokedAt))
				}
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke a token; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			var tok store.Token
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/tokens/"+pathEscape(args[0]), nil, &tok); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s (%s)\n", tok.Name, tok.ID)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// setup resolves the client and the output format every API command needs.
func setup(cmd *cobra.Command) (*client.Client, printer, error) {
	p, err := outputOf(cmd)
	if err != nil {
		return nil, p, err
	}
	c, err := newClient()
	return c, p, err
}
