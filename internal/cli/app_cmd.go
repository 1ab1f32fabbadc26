package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func appCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Manage apps (a repository and what it deploys)"}

	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an app with its git repository and staging and production environments",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var app store.App
			if err := c.Do(cmd.Context(), "POST", "/api/v1/apps", map[string]string{"name": args[0]}, &app); err != nil {
				return err
			}
			if p.json {
				return p.emit(app, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created app %s\n  push to:      %s/git/%s.git\n  environments: %s\n", app.Name, c.URL(), app.Name, strings.Join(app.Environments, ", "))
			return nil
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List apps",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return read(cmd, "/api/v1/apps", func(w *tabwriter.Writer, apps []store.App) {
				row(w, "NAME", "ENVIRONMENTS", "SOURCE", "CREATED")
				for _, a := range apps {
					row(w, a.Name, strings.Join(a.Environments, ","), sourceLine(a), humanTime(a.CreatedAt))
				}
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var a store.App
			if err := c.Do(cmd.Context(), "GET", "/api/v1/apps/"+pathEscape(args[0]), nil, &a); err != nil {
				return err
			}
			return p.emit(a, func(w *tabwriter.Writer) {
				row(w, "Name:", a.Name)
				row(w, "Git:", c.URL()+"/git/"+a.Name+".git")
				row(w, "Registry repository:", a.RegistryRepo)
				row(w, "Environments:", strings.Join(a.Environments, ", "))
				row(w, "Source URL:", sourceLine(a))
				row(w, "Webhook:", webhookLine(c.URL(), a))
				row(w, "Builds:", buildLine(a.Build))
				row(w, "Created:", humanTime(a.CreatedAt))
			})
		},
	}

	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME --yes",
		Short: "Delete an app, its git and registry repositories, runs, services and secrets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting app %s removes its git and registry repositories, history, services and secrets; repeat with --yes to confirm", args[0])
			}
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/apps/"+pathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted app %s\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")

	var srcURL string
	var secretStdin bool
	setSource := &cobra.Command{
		Use:   "set-source NAME --url URL [--webhook-secret-stdin]",
		Short: "Set where webhook pushes are fetched from, and the webhook secret",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{"url": srcURL}
			if secretStdin {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return fmt.Errorf("read webhook secret from stdin: %w", err)
				}
				s := strings.TrimRight(string(b), "\r\n")
				if s == "" {
					return errors.New("--webhook-secret-stdin: stdin was empty; pipe the secret in")
				}
				body["webhook_secret"] = s
			}
			var a store.App
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/apps/"+pathEscape(args[0])+"/source", body, &a); err != nil {
				return err
			}
			if p.json {
				return p.emit(a, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "App %s fetches from %s\nWebhook: %s\n", a.Name, sourceLine(a), webhookLine(c.URL(), a))
			return nil
		},
	}
	setSource.Flags().StringVar(&srcURL, "url", "", "git URL to fetch pushed commits from (required)")
	setSource.Flags().BoolVar(&secretStdin, "webhook-secret-stdin", false, "read the webhook secret from stdin")
	_ = setSource.MarkFlagRequired("url")

	var limit int
	events := &cobra.Command{
		Use:   "events NAME",
		Short: "List push events and their outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, fmt.Sprintf("/api/v1/apps/%s/events?limit=%d", pathEscape(args[0]), limit), func(w *tabwriter.Writer, evs []store.PushEvent) {
				row(w, "ID", "TIME", "SOURCE", "REF", "OLD", "NEW", "BY", "OUTCOME")
				for _, e := range evs {
					out := e.Outcome
					if e.RunID != 0 {
						out = fmt.Sprintf("run %d", e.RunID)
					} else if e.Reason != "" {
						out += ": " + e.Reason
					}
					row(w, e.ID, humanTime(e.CreatedAt), e.Source, e.Ref, shortSHA(e.OldSHA), shortSHA(e.NewSHA), e.PushedBy, out)
				}
			})
		},
	}
	events.Flags().IntVar(&limit, "limit", 50, "how many events (1–500)")

	var stage, reason string
	var disable, enable bool
	transition := &cobra.Command{
		Use:   "transition APP [--stage S (--disable --reason R | --enable)]",
		Short: "Hold runs before a stage (a brake on promotion), release them, or list disabled transitions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			base := "/api/v1/apps/" + pathEscape(args[0]) + "/transitions"
			if !disable && !enable {
				var ts []store.Transition
				if err := c.Do(cmd.Context(), "GET", base, nil, &ts); err != nil {
					return err
				}
				return p.emit(ts, func(w *tabwriter.Writer) {
					row(w, "STAGE", "DISABLED BY", "SINCE", "REASON")
					for _, t := range ts {
						row(w, t.Stage, t.DisabledBy, humanTime(t.DisabledAt), t.Reason)
					}
				})
			}
			if disable == enable {
				return errors.New("give either --disable or --enable")
			}
			if stage == "" {
				return errors.New("--stage is required")
			}
			return sendAndSay(cmd, "PUT", base+"/"+pathEscape(stage), map[string]any{"enabled": enable, "reason": reason})
		},
	}
	transition.Flags().StringVar(&stage, "stage", "", "the stage runs would enter")
	transition.Flags().StringVar(&reason, "reason", "", "why the transition is disabled (required with --disable)")
	transition.Flags().BoolVar(&disable, "disable", false, "hold runs before the stage")
	transition.Flags().BoolVar(&enable, "enable", false, "let held runs continue")

	cmd.AddCommand(create, list, show, del, setSource, appSetBuildCmd(), events, transition)
	return cmd
}

// sourceLine is the app's source URL and whether it has credentials, never
// them: a server older than their sealing answers with them in the URL.
func sourceLine(a store.App) string {
	if a.SourceURL == "" {
		return "-"
	}
	public, user, err := store.SplitSourceCredentials(a.SourceURL)
	var ue *store.SourceURLError
	if errors.As(err, &ue) {
		public = ue.Public
	}
	if a.SourceCredentials || user != nil || err != nil {
		return public + " (credentials set)"
	}
	return public
}

func webhookLine(base string, a store.App) string {
	if !a.HasWebhook {
		return "no secret set (set-source --webhook-secret-stdin)"
	}
	return base + "/hooks/github/" + a.Name
}
