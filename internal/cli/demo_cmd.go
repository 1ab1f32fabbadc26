package cli

import (
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/slipway-dev/slipway/internal/demo"
	"github.com/spf13/cobra"
)

func demoCmd() *cobra.Command {
	var opts demo.Options
	var ports string
	cmd := &cobra.Command{
		Use:   "demo [--ci]",
		Short: "Run the whole flow on this machine: push the example, build, deploy to staging, approve, ship to production, update without downtime",
		Long: `slipway demo starts a server on embedded defaults in a fresh data directory, creates the app
"hello", commits and pushes examples/hello with git, follows the run (build → image → staging
blue/green → approval → production canary), approves it, prints the URLs and the time each stage
took, then pushes a second version under load to show a zero-downtime update. It keeps serving
until Ctrl-C and then removes its containers and images. With --ci it does not wait, and exits 0 only if every
step succeeded. It needs git and a running Docker engine.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ports != "" {
				p, err := parsePorts(ports)
				if err != nil {
					return err
				}
				opts.Ports = p
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Out = cmd.OutOrStdout()
			if _, err := demo.Run(ctx, opts); err != nil {
				return fmt.Errorf("demo failed: %w", err)
			}
			if opts.CI {
				fmt.Fprintln(cmd.OutOrStdout(), "demo: every step succeeded")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.CI, "ci", false, "do not wait for Ctrl-C; exit 0 only if every step succeeded")
	cmd.Flags().StringVar(&opts.DataDir, "data", "", "data directory (default: a fresh temporary one, removed at the end)")
	cmd.Flags().StringVar(&opts.Addr, "addr", "127.0.0.1:0", "address of the demo's server (default: a free loopback port)")
	cmd.Flags().StringVar(&ports, "ports", "", "listener ports STAGING,STAGING_TEST,PRODUCTION,PRODUCTION_TEST (default 8081,9081,8082,9082)")
	return cmd
}

func parsePorts(s string) (demo.Ports, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return demo.Ports{}, fmt.Errorf("--ports takes four ports: STAGING,STAGING_TEST,PRODUCTION,PRODUCTION_TEST")
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 || v > 65535 {
			return demo.Ports{}, fmt.Errorf("--ports: %q is not a TCP port", p)
		}
		n[i] = v
	}
	return demo.Ports{Staging: n[0], StagingTest: n[1], Production: n[2], ProductionTest: n[3]}, nil
}
