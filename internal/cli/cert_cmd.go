package cli

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func certCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Manage the TLS certificates of the load balancer's HTTPS listener (keys are never shown)"}

	var certFile, keyFile, host string
	add := &cobra.Command{
		Use:   "add --cert FILE --key FILE [--host H]",
		Short: "Add a certificate (PEM chain, leaf first) and its key; it replaces the one for the same first host",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certFile == "" || keyFile == "" {
				return fmt.Errorf("--cert and --key are required (PEM files)")
			}
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				return fmt.Errorf("--cert: %w", err)
			}
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			if err := keySafeTo(c.URL()); err != nil {
				return err
			}
			var out store.Certificate
			if err := c.Do(cmd.Context(), "POST", "/api/v1/certificates", map[string]string{"cert_pem": string(certPEM), "key_pem": string(keyPEM), "host": host}, &out); err != nil {
				return err
			}
			if p.json {
				return p.emit(out, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added certificate %s for %s, valid until %s\n", out.Name, strings.Join(out.Hosts, ", "), out.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	add.Flags().StringVar(&certFile, "cert", "", "PEM file of the certificate chain, leaf first")
	add.Flags().StringVar(&keyFile, "key", "", "PEM file of the private key")
	add.Flags().StringVar(&host, "host", "", "refuse the certificate unless it holds this host")

	list := &cobra.Command{
		Use:   "list",
		Short: "List certificates: hosts, expiry, where they came from, the last renewal error",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return read(cmd, "/api/v1/certificates", func(w *tabwriter.Writer, list []store.Certificate) {
				row(w, "NAME", "HOSTS", "EXPIRES", "SOURCE", "ISSUER", "LAST ERROR")
				for _, c := range list {
					row(w, c.Name, strings.Join(c.Hosts, ","), c.NotAfter.UTC().Format(time.RFC3339), c.Source, c.Issuer, orDash(c.LastError))
				}
			})
		},
	}

	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a certificate; its hosts get the default certificate (or a new one through ACME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/certificates/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed certificate %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, rm)
	return cmd
}

// keySafeTo refuses to send a private key in clear text off this machine:
// over http:// only to a loopback server.
func keySafeTo(server string) error { return credentialSafeTo(server, "a private key") }

// credentialSafeTo refuses to send what (a credential) in clear text off
// this machine.
func credentialSafeTo(server, what string) error {
	u, err := url.Parse(server)
	if err != nil {
		return err
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
		return nil
	}
	return fmt.Errorf("refusing to send %s over plain HTTP to %s: log in to the server's https:// URL (slipway server --tls-cert, or --public-url https://… with ACME)", what, server)
}
