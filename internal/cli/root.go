// Package cli is the `slipway` command line: the server and a client of its API.
package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/slipway-dev/slipway/internal/cli.Version=…".
var Version = "dev"

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Self-hosted delivery: push, build, test, package and roll out",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringP("output", "o", "table", "output format of reads: table or json")
	addCAFileFlag(root)
	root.AddCommand(serverCmd(), proxyCmd(), loginCmd(), versionCmd(), tokenCmd(), appCmd(), runCmd(), artifactCmd(), imageCmd(), taskdefCmd(), serviceCmd(), deployCmd(), rollbackCmd(), secretCmd(), certCmd(), envCmd(), notifyCmd(), demoCmd(), statusCmd())
	root.AddCommand(approvalCmds()...)
	showUsageOnArgErrors(root)
	return root
}

// showUsageOnArgErrors adds the command's usage line to cobra's terse
// argument errors ("accepts 2 arg(s), received 1"), so they name the
// arguments the command wants.
func showUsageOnArgErrors(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		showUsageOnArgErrors(c)
	}
	check := cmd.Args
	if check == nil {
		return
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return fmt.Errorf("%w\nusage: %s", err, c.UseLine())
		}
		return nil
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := outputOf(cmd)
			if err != nil {
				return err
			}
			v := map[string]string{"version": Version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v["commit"] = s.Value
					}
				}
			}
			if p.json {
				return p.emit(v, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slipway %s (%s, %s)\n", v["version"], v["go"], v["platform"])
			return nil
		},
	}
}

// noArgs refuses positional arguments and points at the flag most likely
// meant: `slipway run list hello` is `--app hello`.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.Flags().Lookup("app") != nil {
		return fmt.Errorf("%s takes no arguments; to choose an app, use --app %s", cmd.CommandPath(), args[0])
	}
	return fmt.Errorf("%s takes no arguments (got %q); see %s --help", cmd.CommandPath(), args[0], cmd.CommandPath())
}
