package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/spf13/cobra"
)

func proxyCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "proxy [--data DIR]",
		Short: "Run the load balancer (started and adopted by slipway server; outlives it)",
		Long: "The load balancer runs as its own process so apps keep serving while the server restarts.\n" +
			"slipway server starts it when a service needs it and configures it over DATA/proxy.sock;\n" +
			"it keeps its routing table in DATA/proxy.json and restarts into it.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(data)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(abs, 0o700); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			// The server's master key seals the certificate keys in proxy.json.
			keys, err := secret.LoadOrCreate(abs)
			if err != nil {
				return fmt.Errorf("proxy: %w", err)
			}
			if err := lb.Run(ctx, filepath.Join(abs, "proxy.sock"), filepath.Join(abs, "proxy.json"), keys, log); err != nil {
				return fmt.Errorf("proxy: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", defaultDataDir(), "data directory (env SLIPWAY_DATA)")
	return cmd
}
