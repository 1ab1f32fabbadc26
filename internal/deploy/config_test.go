package deploy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name string
		want Shift
		err  string // a part of the error; "" means valid
	}{
		{"", Shift{Kind: "all-at-once"}, ""},
		{"CodeDeployDefault.ECSAllAtOnce", Shift{Kind: "all-at-once"}, ""},
		{"CodeDeployDefault.ECSCanary10Percent5Minutes", Shift{Kind: "canary", Percent: 10, Interval: 5 * time.Minute}, ""},
		{"Canary20Percent5Seconds", Shift{Kind: "canary", Percent: 20, Interval: 5 * time.Second}, ""},
		{"Linear50PercentEvery4Seconds", Shift{Kind: "linear", Percent: 50, Interval: 4 * time.Second}, ""},
		{"Linear10PercentEvery2880Minutes", Shift{Kind: "linear", Percent: 10, Interval: MaxShiftInterval}, ""},
		{"CodeDeployDefault.ECSAllAtOnse", Shift{}, `unknown deployment configuration "CodeDeployDefault.ECSAllAtOnse"; did you mean CodeDeployDefault.ECSAllAtOnce? (use one of CodeDeployDefault.ECSAllAtOnce, `},
		{"codedeploydefault.ecslinear10percentevery3minutes", Shift{}, "did you mean CodeDeployDefault.ECSLinear10PercentEvery3Minutes?"},
		{"canary10percent5minutes", Shift{}, "did you mean Canary10Percent5Minutes?"},
		{"LINEAR10PERCENT1SECONDS", Shift{}, "did you mean Linear10PercentEvery1Seconds?"},
		{"BlueGreen", Shift{}, `unknown deployment configuration "BlueGreen"; use one of`},
		{"Canary0Percent5Minutes", Shift{}, `deployment configuration "Canary0Percent5Minutes": the percent must be 1–99 and the interval 1 to 2880 minutes`},
		{"Linear10PercentEvery0Seconds", Shift{}, "the percent must be 1–99"},
		{"Linear10PercentEvery2881Minutes", Shift{}, "the interval 1 to 2880 minutes"},
		{"Canary10Percent172801Seconds", Shift{}, "(172800 seconds)"},
		// Past int64, and past what a Duration holds in minutes: refused,
		// not wrapped round to a short or negative interval.
		{"Canary10Percent99999999999999999999Minutes", Shift{}, "the percent must be 1–99"},
		{"Canary10Percent9999999999999Minutes", Shift{}, "the percent must be 1–99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig(c.name)
			if c.err == "" {
				if err != nil || got != c.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
				}
				if ValidateConfig(c.name) != nil {
					t.Fatal("ValidateConfig refuses what ParseConfig takes")
				}
				return
			}
			var ce *ConfigError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ce) || ce.Name != c.name {
				t.Fatalf("error %v, want a *ConfigError containing %q", err, c.err)
			}
			if ValidateConfig(c.name) == nil {
				t.Fatal("ValidateConfig takes what ParseConfig refuses")
			}
		})
	}
}
