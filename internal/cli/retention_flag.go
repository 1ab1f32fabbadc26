package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/spf13/cobra"
)

// retentionFlag is server --run-retention: a Go duration or whole days
// ("30d"), 0 to keep runs' artifacts and logs forever.
type retentionFlag struct {
	d      time.Duration
	text   string
	envErr error // a bad SLIPWAY_RUN_RETENTION, reported unless the flag overrides it
}

const retentionEnv = "SLIPWAY_RUN_RETENTION"

// add registers the flag on cmd, its default from the environment. A bad
// environment value fails the command before it runs (cobra reports a bad
// flag value itself, naming the flag).
func (f *retentionFlag) add(cmd *cobra.Command) {
	f.d, f.text = pipeline.DefaultRunRetention, "90d"
	if v := os.Getenv(retentionEnv); v != "" {
		if err := f.Set(v); err != nil {
			f.envErr = fmt.Errorf("%s (--run-retention): %w", retentionEnv, err)
		}
	}
	cmd.Flags().Var(f, "run-retention", "how long a run's artifacts and logs are kept after it ends, as 90d or 720h; 0 keeps them forever. A service's running or rollback revision, and each app's newest successful run, keep their run (env "+retentionEnv+")")
	pre := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if f.envErr != nil && !cmd.Flags().Changed("run-retention") {
			return f.envErr
		}
		if pre != nil {
			return pre(cmd, args)
		}
		return nil
	}
}

func (f *retentionFlag) String() string { return f.text }
func (f *retentionFlag) Type() string   { return "duration" }

func (f *retentionFlag) Set(s string) error {
	d, err := parseRetention(s)
	if err != nil {
		return err
	}
	f.d, f.text, f.envErr = d, s, nil
	return nil
}

// parseRetention reads a Go duration or a number of days ("90d").
func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(1<<63-1)/int64(24*time.Hour) {
			return 0, fmt.Errorf("%q is not a number of days; use e.g. 90d, 720h or 0 (keep forever)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration; use e.g. 90d, 720h or 0 (keep forever)", s)
		}
	}
	if d < 0 {
		return 0, errors.New("retention cannot be negative; use 0 to keep runs' artifacts and logs forever")
	}
	return d, nil
}
