package deploy

import (
	"errors"
	"os"
	"testing"
)

// FuzzParseAppSpec: any bytes as appspec.yaml give an appspec or an error
// that says something, never a panic.
func FuzzParseAppSpec(f *testing.F) {
	if b, err := os.ReadFile("../../examples/hello/appspec.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: x\n        LoadBalancerInfo: {ContainerName: web, ContainerPort: 8080}\nHooks:\n  - BeforeAllowTraffic: {url: 'http://x/', expect-status: 200, timeout: 5s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseAppSpec(data)
		if err == nil && spec == nil {
			t.Fatal("no appspec and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}

// FuzzParseConfig: any deployment configuration name is one of the known
// ones, a valid custom one, or refused with a message, never a panic. A
// shift's steps hold green for a positive interval within the bound, and
// a suggestion is itself a valid name.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"CodeDeployDefault.ECSAllAtOnce", "CodeDeployDefault.ECSCanary10Percent5Minutes", "Canary20Percent4Seconds", "Linear50PercentEvery4Seconds", "Linear0PercentEvery0Seconds",
		"Canary10Percent99999999999999999999Minutes", "canary10percent5minutes", "CodeDeployDefault.ECSAllAtOnse"} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseConfig(name)
		if err != nil {
			var ce *ConfigError
			if err.Error() == "" || !errors.As(err, &ce) {
				t.Fatalf("error %v: want a *ConfigError with a message", err)
			}
			if ce.Suggestion != "" && ValidateConfig(ce.Suggestion) != nil {
				t.Fatalf("%q suggests %q, which is not valid", name, ce.Suggestion)
			}
			return
		}
		if s.Kind != "all-at-once" && (s.Interval <= 0 || s.Interval > MaxShiftInterval) {
			t.Fatalf("%q: interval %v", name, s.Interval)
		}
	})
}
