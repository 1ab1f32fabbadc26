package cli

import (
	"bufio"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func notifyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Notification channels of an app (Slack, webhook, e-mail) and their delivery log"}

	var req server.ChannelRequest
	var events string
	var credStdin bool
	add := &cobra.Command{
		Use:   "add APP NAME --type slack|webhook|email [settings]",
		Short: "Add or replace a notification channel; credentials are stored encrypted",
		Long: `Add or replace a notification channel of an app.

  slack    --url https://hooks.slack.com/services/…   (the URL is the credential: pass it with --credential-stdin to keep it out of shell history)
  webhook  --url URL --credential-stdin               (stdin holds the HMAC-SHA256 key of the X-Slipway-Signature-256 header)
  email    --smtp-host H [--smtp-port 587] [--smtp-user U --credential-stdin] --from A --to B,C [--tls starttls|tls|none]

Events (default all): ` + strings.Join(notify.Kinds, ", "),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			if events != "" {
				req.Events = strings.Split(events, ",")
			}
			if credStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				line = strings.TrimRight(line, "\r\n")
				if line == "" {
					return fmt.Errorf("--credential-stdin: nothing on stdin (%v)", err)
				}
				switch req.Type {
				case notify.TypeSlack:
					req.Settings.URL = line
				case notify.TypeWebhook:
					req.Settings.Secret = line
				default:
					req.Settings.Password = line
				}
			}
			var ch store.Channel
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/apps/"+pathEscape(args[0])+"/channels/"+pathEscape(args[1]), req, &ch); err != nil {
				return err
			}
			if p.json {
				return p.emit(ch, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Channel %s of %s: %s %s, events %s\n", ch.Name, ch.App, ch.Type, ch.Target, strings.Join(ch.Events, ", "))
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&req.Type, "type", "", "slack, webhook or email (required)")
	f.StringVar(&events, "events", "", "comma-separated events to send (default: all)")
	f.StringVar(&req.Settings.URL, "url", "", "slack or webhook: where to POST")
	f.BoolVar(&credStdin, "credential-stdin", false, "read the credential (Slack URL, webhook key or SMTP password) from stdin")
	f.StringVar(&req.Settings.Host, "smtp-host", "", "email: SMTP server host")
	f.IntVar(&req.Settings.Port, "smtp-port", 0, "email: SMTP port (default 587, or 465 with --tls tls)")
	f.StringVar(&req.Settings.Username, "smtp-user", "", "email: SMTP user name")
	f.StringVar(&req.Settings.From, "from", "", "email: sender address")
	f.StringSliceVar(&req.Settings.To, "to", nil, "email: recipient addresses")
	f.StringVar(&req.Settings.TLS, "tls", "", "email: starttls (default, required), tls (implicit) or none")
	f.BoolVar(&req.Settings.InsecureSkipVerify, "insecure-skip-verify", false, "email: accept a self-signed server certificate")
	_ = add.MarkFlagRequired("type")

	list := &cobra.Command{
		Use:   "list APP",
		Short: "List an app's notification channels (never their credentials)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, "/api/v1/apps/"+pathEscape(args[0])+"/channels", func(w *tabwriter.Writer, cs []store.Channel) {
				row(w, "NAME", "TYPE", "TARGET", "EVENTS", "UPDATED")
				for _, ch := range cs {
					row(w, ch.Name, ch.Type, ch.Target, strings.Join(ch.Events, ","), humanTime(ch.UpdatedAt))
				}
			})
		},
	}

	rm := &cobra.Command{
		Use:   "rm APP NAME",
		Short: "Remove a notification channel",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "DELETE", "/api/v1/apps/"+pathEscape(args[0])+"/channels/"+pathEscape(args[1]), nil)
		},
	}

	log := &cobra.Command{
		Use:   "log APP",
		Short: "Show notification deliveries and their outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, "/api/v1/apps/"+pathEscape(args[0])+"/notifications", func(w *tabwriter.Writer, ds []store.Delivery) {
				row(w, "ID", "CHANNEL", "EVENT", "STATE", "ATTEMPTS", "CREATED", "ENDED", "LAST ERROR")
				for _, d := range ds {
					row(w, d.ID, d.Channel, d.Event, d.State, d.Attempts, humanTime(d.CreatedAt), ago(d.EndedAt), orDash(d.LastError))
				}
			})
		},
	}
	cmd.AddCommand(add, list, rm, log)
	return cmd
}
