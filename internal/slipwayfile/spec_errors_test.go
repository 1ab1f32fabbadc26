package slipwayfile

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/specfile"
)

// fourMistakes has one mistake of each kind a person makes typing a
// pipeline: a misspelt key, action type, deployment configuration and
// artifact name.
const fourMistakes = `stages:
  - name: Build
    actions:
      - name: compile
        type: biuld
        outputs: [BuildArtifact]
  - name: Production
    actions:
      - name: deploy
        type: deploy
        environment: production
        service: web
        inputs: [SourceArtifact, BuildArtifcat]
        deployment-config: CodeDeployDefault.ECSAllAtOnse
        listener-prot: 8081
`

// TestParseReportsEveryMistake: every mistake of the file is reported at
// once, in file order, each with its line, column, field and the name
// meant.
func TestParseReportsEveryMistake(t *testing.T) {
	_, err := Parse([]byte(fourMistakes))
	want := []string{
		`slipway.yaml:5:15: stages[0].actions[0].type: "biuld" is not an action type; did you mean build? (use one of build, test, image, deploy, approval, invoke)`,
		`slipway.yaml:13:34: stages[1].actions[0].inputs[1]: no earlier action outputs artifact "BuildArtifcat"; did you mean BuildArtifact? (name an output of an earlier stage or run-order, or SourceArtifact)`,
		`slipway.yaml:14:28: stages[1].actions[0].deployment-config: unknown deployment configuration "CodeDeployDefault.ECSAllAtOnse"; did you mean CodeDeployDefault.ECSAllAtOnce? (use one of CodeDeployDefault.ECSAllAtOnce, `,
		`slipway.yaml:15:9: stages[1].actions[0].listener-prot: unknown key "listener-prot"; did you mean listener-port? (allowed here: name, type, `,
	}
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d:\n%s\nwant it to start\n%s", i, lines[i], w)
		}
	}
	// A caller after one error gets the first; one after all gets them all.
	var first *Error
	if !errors.As(err, &first) || first.Line != 5 || first.Field != "stages[0].actions[0].type" {
		t.Fatalf("errors.As gave %+v", first)
	}
	var all specfile.Errors
	if !errors.As(err, &all) || len(all) != 4 {
		t.Fatalf("errors.As gave %d errors", len(all))
	}
}

// TestParseChecksBeforeARun: what would otherwise fail only when an action
// runs — a deploy action in a production stage after its approval — is
// refused when the file is read.
func TestParseChecksBeforeARun(t *testing.T) {
	const head = "stages:\n  - name: Build\n    actions:\n      - {name: compile, type: build, outputs: [Out]}\n      - {name: image, type: image, run-order: 2, inputs: [Out], outputs: [Img]}\n      - {name: gate, type: approval}\n  - name: Deploy\n    actions:\n"
	deployWith := func(settings string) string {
		return head + "      - name: d\n        type: deploy\n        environment: prod\n        service: web\n        inputs: [Img, Out]\n" + settings
	}
	cases := []struct {
		name, yaml string
		want       string // "" means the file is valid
	}{
		// Deployment configurations.
		{"predefined config", deployWith("        appspec: appspec.yaml\n        deployment-config: CodeDeployDefault.ECSCanary10Percent5Minutes\n"), ""},
		{"custom config", deployWith("        strategy: blue-green\n        deployment-config: Linear25PercentEvery30Seconds\n"), ""},
		{"all at once rolling", deployWith("        deployment-config: CodeDeployDefault.ECSAllAtOnce\n"), ""},
		{"misspelt config", deployWith("        deployment-config: CodeDeployDefault.ECSAllAtOnse\n"),
			`slipway.yaml:14:28: stages[1].actions[0].deployment-config: unknown deployment configuration "CodeDeployDefault.ECSAllAtOnse"; did you mean CodeDeployDefault.ECSAllAtOnce?`},
		{"custom config in the wrong case", deployWith("        appspec: a.yaml\n        deployment-config: canary10percent5minutes\n"), "did you mean Canary10Percent5Minutes?"},
		{"custom config out of range", deployWith("        appspec: a.yaml\n        deployment-config: Canary100Percent5Minutes\n"), "unknown deployment configuration"},
		{"custom config interval", deployWith("        appspec: a.yaml\n        deployment-config: Canary10Percent0Minutes\n"), "the percent must be 1–99 and the interval 1 to 2880 minutes"},
		{"steps on a rolling deployment", deployWith("        deployment-config: Canary10Percent5Minutes\n"),
			`stages[1].actions[0].deployment-config: "Canary10Percent5Minutes" shifts traffic in steps, which only a blue-green deployment does`},
		{"steps on an explicit rolling deployment", deployWith("        appspec: a.yaml\n        strategy: rolling\n        deployment-config: CodeDeployDefault.ECSLinear10PercentEvery1Minutes\n"), "only a blue-green deployment does"},
		{"misspelt strategy", deployWith("        strategy: bluegreen\n"), `"bluegreen" must be rolling or blue-green; did you mean blue-green?`},
		// Ports.
		{"ports", deployWith("        listener-port: 8081\n        test-listener-port: 9081\n        container-port: 80\n"), ""},
		{"listener port too low", deployWith("        listener-port: 80\n"), `slipway.yaml:14:24: stages[1].actions[0].listener-port: must be a port from 1024 to 65535; got 80`},
		{"listener port too high", deployWith("        listener-port: 70000\n"), `listener-port: must be a port from 1024 to 65535; got 70000`},
		{"negative listener port", deployWith("        listener-port: -1\n"), `listener-port: must be a port from 1024 to 65535; got -1`},
		{"test port equal", deployWith("        listener-port: 8081\n        test-listener-port: 8081\n"),
			`slipway.yaml:15:29: stages[1].actions[0].test-listener-port: must differ from listener-port (both 8081)`},
		{"test port alone", deployWith("        test-listener-port: 9081\n"), `test-listener-port: needs a listener-port`},
		{"host", deployWith("        host: shop.example.com\n        test-host: green.shop.example.com\n        path-prefix: /api\n        https: true\n        redirect-https: true\n        hsts: true\n"), ""},
		{"bad host", deployWith("        host: Shop_Example\n"), `host: host "Shop_Example" must be lower-case letters`},
		{"test host alone", deployWith("        test-host: green.example.com\n"), `test-host: needs a host`},
		{"https alone", deployWith("        https: true\n"), `https: needs a host to claim on the shared listeners`},
		{"hsts without https", deployWith("        host: a.example.com\n        hsts: true\n"), `hsts: needs https: true`},
		{"bad prefix", deployWith("        host: a.example.com\n        path-prefix: api\n"), `path-prefix: "api" must start with /`},
		{"test port out of range", deployWith("        listener-port: 8081\n        test-listener-port: 65536\n"), `test-listener-port: must be a port from 1024 to 65535; got 65536`},
		{"container port", deployWith("        container-port: 0x10000\n"), `container-port: must be a port from 1 to 65535; got 65536`},
		{"port a word", deployWith("        listener-port: http\n"), `listener-port: must be a whole number, not "http"`},
		{"desired count", deployWith("        desired-count: 101\n"), `desired-count: must be 1 to 100 (left out: 1); got 101`},
		{"two services one port", deployWith("        listener-port: 8081\n") + "      - {name: e, type: deploy, environment: prod, service: api, inputs: [Img], run-order: 2, listener-port: 9000, test-listener-port: 8081}\n",
			`slipway.yaml:15:136: stages[1].actions[1].test-listener-port: port 8081 is already the listener-port of service web in prod (action "d" of stage "Deploy"); each service needs ports of its own`},
		{"one service deployed twice", deployWith("        listener-port: 8081\n") + "  - name: Again\n    actions:\n      - {name: d, type: deploy, environment: prod, service: web, inputs: [Img], listener-port: 8081}\n", ""},
		// Durations.
		{"health check interval", deployWith("        listener-port: 8081\n        health-check-interval: 2s\n        health-check-path: /health\n"), ""},
		{"health check interval a word", deployWith("        health-check-interval: often\n"),
			`slipway.yaml:14:32: stages[1].actions[0].health-check-interval: "often" must be a duration from 1s to 5m0s, such as 5s`},
		{"health check interval zero", deployWith("        health-check-interval: 0s\n"), `"0s" must be a duration from 1s to 5m0s`},
		{"health check interval long", deployWith("        health-check-interval: 10m\n"), `"10m" must be a duration from 1s to 5m0s`},
		{"health check path", deployWith("        health-check-path: health\n"), `health-check-path: "health" must start with /, such as /health`},
		{"termination wait", deployWith("        termination-wait: 0s\n"), ""},
		{"termination wait a number", deployWith("        termination-wait: 5\n"), `termination-wait: "5" must be a duration from 0s to 48h0m0s (2880 minutes), such as 5m`},
		{"termination wait negative", deployWith("        termination-wait: -1m\n"), `termination-wait: "-1m" must be a duration`},
		{"termination wait long", deployWith("        termination-wait: 49h\n"), `termination-wait: "49h" must be a duration`},
		{"action timeout", deployWith("        timeout: 0s\n"), `timeout: "0s" is not a positive duration`},
		{"build timeout", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, timeout: 37h}\n", `stages[0].actions[0].timeout: must be at most 36h0m0s (36 hours, CodeBuild's longest build timeout); got 37h0m0s`},
		{"build timeout at the limit", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, timeout: 36h}\n", ""},
		{"approval timeout", "stages:\n  - name: B\n    actions:\n      - {name: a, type: approval, timeout: 1m}\n", "an approval timeout must be between 5m and 1440h"},
		// References to earlier actions' variables.
		{"reference", head + "      - {name: v, type: build, env: {V: \"#{compile.VERSION}\", U: \"#{image.IMAGE_URI}@#{image.IMAGE_DIGEST}\"}}\n", ""},
		{"reference same stage later run-order", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build}\n      - {name: b, type: invoke, run-order: 2, command: 'echo #{a.X}'}\n", ""},
		{"reference misspelt", head + "      - {name: v, type: build, env: {V: \"#{compil.VERSION}\"}}\n",
			`slipway.yaml:9:41: stages[1].actions[0].env.V: #{compil.VERSION}: no action is named "compil"; did you mean compile? (a reference names a build, test or image action of an earlier stage or a lower run-order)`},
		{"reference to the same run-order", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build}\n      - {name: b, type: invoke, command: 'echo #{a.X}'}\n",
			`stages[0].actions[1].command: #{a.X}: action "a" of stage "B" does not run before this action`},
		{"reference to a later stage", "stages:\n  - name: A\n    actions:\n      - {name: gate, type: approval, review-url: 'http://x/#{b.URL}'}\n  - name: B\n    actions:\n      - {name: b, type: build}\n",
			`stages[0].actions[0].review-url: #{b.URL}: action "b" of stage "B" does not run before this action`},
		{"reference to an approval", head + "      - {name: v, type: invoke, url: 'http://x/#{gate.X}'}\n",
			`stages[1].actions[0].url: #{gate.X}: action "gate" of stage "Build" is an approval action, which exports no variables`},
		{"reference to an image's unknown variable", head + "      - {name: v, type: build, env: {V: \"#{image.IMAGE_URL}\"}}\n",
			`#{image.IMAGE_URL}: image action "image" of stage "Build" exports IMAGE_URI and IMAGE_DIGEST only; did you mean IMAGE_URI?`},
		{"reference to an action of no type", "stages:\n  - name: A\n    actions:\n      - {name: a}\n  - name: B\n    actions:\n      - {name: b, type: invoke, command: 'echo #{a.X}'}\n",
			`stages[0].actions[0].type: "" is not an action type`},
		{"reference where none is read", head + "      - {name: v, type: image, build-args: {V: \"#{nothing.X}\"}}\n", ""},
		// Artifacts.
		{"input from a later run-order", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, inputs: [X]}\n      - {name: b, type: build, run-order: 2, outputs: [X]}\n",
			`stages[0].actions[0].inputs[0]: no earlier action outputs artifact "X": action "b" of stage "B" outputs it but does not run before this action`},
		{"output named as the source's", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [SourceArtifact]}\n", `artifact "SourceArtifact" is already an output of the source action`},
		{"duplicate output names the first", "stages:\n  - name: B\n    actions:\n      - {name: a, type: build, outputs: [X]}\n  - name: C\n    actions:\n      - {name: b, type: build, outputs: [X]}\n",
			`slipway.yaml:7:42: stages[1].actions[0].outputs[0]: artifact "X" is already an output of action "a" of stage "B"; output names must be unique`},
		// Other names with a close one.
		{"misspelt mode", "mode: queue\nstages:\n  - name: B\n    actions: [{name: a, type: build}]\n", `slipway.yaml:1:7: mode: "queue" is not a mode; did you mean queued? (use superseded, queued or parallel)`},
		{"misspelt top key", "stagse:\n  - name: B\n", `slipway.yaml:1:1: stagse: unknown key "stagse"; did you mean stages? (allowed here: on, mode, stages)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestParseSaysEachThingOnce: a value refused as it is decoded is left
// zero, and what would follow from that zero is not said again.
func TestParseSaysEachThingOnce(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"name a mapping", "stages:\n  - name: {x: 1}\n    actions: [{name: a, type: build}]\n",
			`slipway.yaml:2:11: stages[0].name: must be a single value, not a mapping`},
		{"action a list", "stages:\n  - name: B\n    actions:\n      - [a, b]\n",
			`slipway.yaml:4:9: stages[0].actions[0]: must be a mapping of keys to values`},
		{"stages a mapping", "stages: {a: 1}\n", `slipway.yaml:1:9: stages: must be a list`},
		{"document a list", "- a\n", `slipway.yaml:1:1: must be a mapping of keys to values`},
		{"approval timeout a word", "stages:\n  - name: B\n    actions:\n      - {name: a, type: approval, timeout: soon}\n",
			`slipway.yaml:4:44: stages[0].actions[0].timeout: "soon" is not a positive duration such as 90s or 10m`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || err.Error() != c.want {
				t.Fatalf("error\n%v\nwant exactly\n%s", err, c.want)
			}
		})
	}
}

// TestExampleParses: the example pipeline the docs and demo use stays
// valid under every check.
func TestExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../examples/hello/slipway.yaml")
	if err != nil {
		t.Skip(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}
