package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/server"
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
	var addr, data, logFormat, publicURL string
	var maxParallel int
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
			srv, err := server.New(ctx, server.Config{Addr: addr, DataDir: abs, Log: log, MaxParallelActions: maxParallel, PublicURL: publicURL})
			if err != nil {
				return err
			}
			defer srv.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "Slipway is starting on http://%s\nLog in with:\n  slipway login http://%s --token \"$(cat %s)\"\n",
				addr, addr, filepath.Join(abs, server.AdminTokenFile))
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr(), "address to listen on (env SLIPWAY_ADDR)")
	cmd.Flags().StringVar(&data, "data", defaultDataDir(), "data directory (env SLIPWAY_DATA)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().IntVar(&maxParallel, "max-parallel-actions", 2, "pipeline actions that may run at once")
	cmd.Flags().StringVar(&publicURL, "public-url", os.Getenv("SLIPWAY_PUBLIC_URL"), "URL people reach the server at, for links in notices (env SLIPWAY_PUBLIC_URL; default http://ADDR)")
	return cmd
}

func loginCmd() *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login URL --token TOKEN",
		Short: "Store the server URL and token for later commands",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return fmt.Errorf("--token is required (the admin token is in DATA/admin.token)")
			}
			c := client.New(args[0], token)
			var who struct {
				Name string `json:"name"`
				Role string `json:"role"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/whoami", nil, &who); err != nil {
				return fmt.Errorf("login failed: %w", err)
			}
			path, err := saveConfig(clientConfig{URL: c.URL(), Token: token})
			if err != nil {
				return fmt.Errorf("save config: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s); saved to %s\n", c.URL(), who.Name, who.Role, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "API token")
	return cmd
}
