package cli

import (
	"strings"
	"testing"
)

func TestStrayArgumentsNameTheFlagMeant(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "list", "hello"}, "slipway run list takes no arguments; to choose an app, use --app hello"},
		{[]string{"secret", "list", "hello"}, "use --app hello"},
		{[]string{"deploy", "list", "hello"}, "use --app hello"},
		{[]string{"token", "list", "all"}, `slipway token list takes no arguments (got "all"); see slipway token list --help`},
		{[]string{"version", "1"}, "takes no arguments"},
	}
	for _, c := range cases {
		_, _, err := slipway(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("slipway %s: error %v, want it to contain %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestMissingArgumentsShowTheUsageLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"notify", "add", "shop", "--type", "slack"}, "accepts 2 arg(s), received 1\nusage: slipway notify add APP NAME --type"},
		{[]string{"run", "show"}, "usage: slipway run show ID"},
		{[]string{"service", "scale", "web", "--app", "a", "--env", "staging"}, "usage: slipway service scale NAME N"},
		{[]string{"run", "list", "hello"}, "use --app hello\nusage: slipway run list [--app APP]"},
	}
	for _, c := range cases {
		_, _, err := slipway(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("slipway %s: error %v, want it to contain %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
