package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func defaultDataDir() string {
	if v := os.Getenv("SLIPWAY_DATA"); v != "" {
		return v
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "slipway-data"
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "slipway")
}

func defaultAddr() string {
	if v := os.Getenv("SLIPWAY_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:7070"
}

func serverCmd() *cobra.Command {
	var addr, data, logFormat, publicURL, tlsCert, tlsKey string
	var maxParallel int
	var edgef edgeFlags
	var blobStore, database, advertiseURL string
	var leaseTTL time.Duration
	var runRetention retentionFlag
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Slipway server (API, git, registry and UI on one port)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h slog.Handler
			switch logFormat {
			case "text":
				h = slog.NewTextHandler(os.Stderr, nil)
			case "json":
				h = slog.NewJSONHandler(os.Stderr, nil)
			default:
				return fmt.Errorf("--log-format %q is not supported; use text or json", logFormat)
			}
			tlsConfig, leaf, err := serverTLS(tlsCert, tlsKey, time.Now())
			if err != nil {
				return err
			}
			edge, acme, err := edgef.config()
			if err != nil {
				return err
			}
			if database == "" {
				// Read here, not as the flag's default: --help would print it.
				database = os.Getenv("SLIPWAY_DATABASE")
			}
			if database != "" {
				if _, err := store.RedactURL(database); err != nil {
					return fmt.Errorf("--database: %w", err)
				}
			}
			if v := os.Getenv("SLIPWAY_LEASE_TTL"); v != "" && !cmd.Flags().Changed("lease-ttl") {
				if _, err := time.ParseDuration(v); err != nil {
					return fmt.Errorf("SLIPWAY_LEASE_TTL %q: want a duration such as 10s", v)
				}
			}
			if leaseTTL != 0 && (leaseTTL < time.Second || leaseTTL > 5*time.Minute) {
				return fmt.Errorf("--lease-ttl %v: want between 1s and 5m", leaseTTL)
			}
			if advertiseURL != "" {
				if _, err := server.AdvertisedURL(advertiseURL); err != nil {
					return fmt.Errorf("--advertise-url: %w; give the http(s)://HOST:PORT the other servers reach this one at", err)
				}
			}
			blobs, err := blob.Parse(blobStore)
			if err != nil {
				return fmt.Errorf("--blob-store: %w", err)
			}
			log := slog.New(h)
			if path := os.Getenv("SLIPWAY_CPUPROFILE"); path != "" {
				// For measuring the server (go tool pprof), written when it stops.
				f, err := os.Create(path)
				if err != nil {
					return fmt.Errorf("SLIPWAY_CPUPROFILE: %w", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("SLIPWAY_CPUPROFILE: %w", err)
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			if path := os.Getenv("SLIPWAY_MEMPROFILE"); path != "" {
				// The heap as of the last 30 s, while the server runs.
				go func() {
					for range time.Tick(30 * time.Second) {
						if f, err := os.Create(path); err == nil {
							pprof.WriteHeapProfile(f)
							f.Close()
						}
					}
				}()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			abs, err := filepath.Abs(data)
			if err != nil {
				return err
			}
			// The port first: a server that cannot listen must not start
			// reconciling tasks or resuming runs in the meantime.
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s (--addr): %w", addr, err)
			}
			defer ln.Close()
			srv, err := server.New(ctx, server.Config{Addr: addr, DataDir: abs, Log: log, MaxParallelActions: maxParallel, PublicURL: publicURL, TLS: tlsConfig,
				Edge: edge, ACME: acme, CertCheckEvery: edgef.certCheckEvery, AutoTLSHost: autoTLSHost(publicURL, tlsConfig, acme), Blobs: blobs, DatabaseURL: database, AdvertiseURL: advertiseURL, LeaseTTL: leaseTTL, RunRetention: runRetention.d})
			if err != nil {
				return err
			}
			defer srv.Close()
			scheme, caFile := "http", ""
			if tlsConfig != nil {
				scheme, caFile = "https", " --ca-file CA.pem" // the CA that signed --tls-cert, unless the system's trust it
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Slipway is starting on %s://%s\nLog in with:\n  slipway login %s --token \"$(cat %s)\"%s\n",
				scheme, addr, loginURL(addr, leaf), filepath.Join(abs, server.AdminTokenFile), caFile)
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr(), "address to listen on (env SLIPWAY_ADDR)")
	cmd.Flags().StringVar(&data, "data", defaultDataDir(), "data directory (env SLIPWAY_DATA)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().IntVar(&maxParallel, "max-parallel-actions", 2, "pipeline actions that may run at once")
	edgef.add(cmd)
	runRetention.add(cmd)
	cmd.Flags().StringVar(&database, "database", "", "PostgreSQL database to keep state in, which several servers may share: postgres://USER:PASSWORD@HOST:5432/DB (env SLIPWAY_DATABASE; default SQLite in the data directory)")
	cmd.Flags().StringVar(&advertiseURL, "advertise-url", os.Getenv("SLIPWAY_ADVERTISE_URL"), "URL the other servers on the same --database reach this one at (env SLIPWAY_ADVERTISE_URL; default http(s)://ADDR)")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", envDuration("SLIPWAY_LEASE_TTL"), "with several servers on one --database: how long a dead server's control lease lasts before another takes over (env SLIPWAY_LEASE_TTL; default 10s)")
	cmd.Flags().StringVar(&blobStore, "blob-store", os.Getenv("SLIPWAY_BLOB_STORE"), "where registry layers, artifacts and caches are kept: s3://BUCKET/PREFIX[?region=R&endpoint=URL&path-style=true], credentials from the AWS environment (env SLIPWAY_BLOB_STORE; default the data directory)")
	cmd.Flags().StringVar(&publicURL, "public-url", os.Getenv("SLIPWAY_PUBLIC_URL"), "URL people reach the server at, for links in notices (env SLIPWAY_PUBLIC_URL; default http://ADDR, or https://ADDR with --tls-cert)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (the server's certificate first); needs --tls-key")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	return cmd
}

func loginCmd() *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login URL --token TOKEN [--ca-file CA.pem]",
		Short: "Store the server URL, token and CA file for later commands",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return fmt.Errorf("--token is required (the admin token is in DATA/admin.token)")
			}
			// Only the CA of this command line is stored: a login that
			// verified the server without one keeps none.
			cfg := clientConfig{URL: args[0], Token: token}
			file, from := givenCAFile()
			switch {
			case file == "":
			case !strings.HasPrefix(args[0], "https://") && from == "--ca-file":
				return fmt.Errorf("--ca-file is for https:// servers and %s is not one: log in at its https:// URL, or without --ca-file", args[0])
			case strings.HasPrefix(args[0], "https://"):
				abs, err := filepath.Abs(file) // later commands run in other directories
				if err != nil {
					return fmt.Errorf("%s: %w", from, err)
				}
				cfg.CAFile, cfg.caFrom = abs, from
			}
			opts, err := cfg.clientOptions()
			if err != nil {
				return err
			}
			c := client.New(args[0], token, opts...)
			var who struct {
				Name string `json:"name"`
				Role string `json:"role"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/whoami", nil, &who); err != nil {
				return fmt.Errorf("login failed: %w", err)
			}
			path, err := saveConfig(clientConfig{URL: c.URL(), Token: token, CAFile: cfg.CAFile})
			if err != nil {
				return fmt.Errorf("save config: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s); saved to %s\n", c.URL(), who.Name, who.Role, path)
			if cfg.CAFile != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Later commands trust the CA in %s as well as the system's\n", cfg.CAFile)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "API token")
	return cmd
}

// envDuration reads a duration default from the environment; RunE refuses
// an invalid one.
func envDuration(name string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(name))
	return d
}
