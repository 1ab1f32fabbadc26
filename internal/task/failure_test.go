package task

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/taskdef"
)

func TestFailureSaysWhy(t *testing.T) {
	cases := []struct {
		name     string
		f        Failure
		headline string
		error    string
	}{
		{"a missing entrypoint", Failure{Kind: NotStarted, Container: "web", ExitCode: 127, EngineError: `exec: "/app-typo": stat /app-typo: no such file or directory`},
			`container web could not start: exec: "/app-typo": stat /app-typo: no such file or directory (exit code 127)`, ""},
		{"an exit with output", Failure{Kind: Exited, Container: "web", Essential: true, ExitCode: 3, Output: []string{"loading", "boom: config missing"}},
			"essential container web exited with code 3", "essential container web exited with code 3; last output: loading | boom: config missing"},
		{"a sidecar's exit", Failure{Kind: Exited, Container: "db", ExitCode: 1},
			"container db exited with code 1", ""},
		{"an OOM kill", Failure{Kind: Exited, Container: "web", Essential: true, ExitCode: 137, OOMKilled: true, MemoryLimit: 64 << 20},
			"essential container web exited with code 137: OOM-killed at its memory limit of 64 MiB", ""},
		{"a SIGKILL under a memory limit", Failure{Kind: Exited, Container: "web", Essential: true, ExitCode: 137, MemoryLimit: 64 << 20},
			"essential container web exited with code 137: killed (SIGKILL), perhaps out of memory at its memory limit of 64 MiB", ""},
		{"a SIGKILL without a limit", Failure{Kind: Exited, Container: "web", Essential: true, ExitCode: 137},
			"essential container web exited with code 137", ""},
		{"an engine error on exit", Failure{Kind: Exited, Container: "web", Essential: true, ExitCode: 128, EngineError: "mount failed"},
			"essential container web exited with code 128 (engine: mount failed)", ""},
		{"a failed health check", Failure{Kind: Unhealthy, Container: "web", Health: "exit code 1: connection refused", Output: []string{"slow start"}},
			"container web failed its health check (exit code 1: connection refused)", "container web failed its health check (exit code 1: connection refused); last output: slow start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.f.Headline(); got != c.headline {
				t.Errorf("headline:\n got %s\nwant %s", got, c.headline)
			}
			want := c.error
			if want == "" {
				want = c.headline
			}
			if got := c.f.Error(); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestFailureIsAnErrorCallersFind(t *testing.T) {
	engine := errors.New("Error response from daemon: failed to create shim task")
	err := error(&Failure{Kind: NotStarted, Container: "web", cause: engine})
	var f *Failure
	if !errors.As(err, &f) || !errors.Is(err, engine) {
		t.Fatalf("errors.As %v, errors.Is the engine's %v", errors.As(err, &f), errors.Is(err, engine))
	}
}

func TestFailureMasksSecrets(t *testing.T) {
	f := &Failure{Kind: Exited, Container: "web", EngineError: "bad password hunter22", Output: []string{"connecting with hunter22", "no"}}
	f.Mask(secretMasker(map[string]map[string]string{"web": {"DB_PASSWORD": "hunter22"}}))
	if strings.Contains(f.Error(), "hunter22") {
		t.Fatalf("a secret shows: %s", f.Error())
	}
	var none *Failure
	none.Mask(nil) // a nil failure, a nil masker: nothing to do
}

func TestEngineCause(t *testing.T) {
	cases := []struct{ in, want string }{
		{`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/app-typo": stat /app-typo: no such file or directory: unknown`,
			`exec: "/app-typo": stat /app-typo: no such file or directory`},
		{`Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: exec: "/app-typo": no such file or directory: unknown`,
			`exec: "/app-typo": no such file or directory`},
		{"some other error", "some other error"},
		{"", ""},
	}
	for _, c := range cases {
		if got := engineCause(c.in); got != c.want {
			t.Errorf("engineCause(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestLineWriterBoundsLines(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"whole lines", []string{"a\nb\n"}, []string{"a", "b"}},
		{"a line over several writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"a last line without a newline", []string{"a\nb"}, []string{"a", "b"}},
		{"an empty line", []string{"\n\nx\n"}, []string{"", "", "x"}},
		{"a long line is cut once", []string{"0123456789abc\nok\n"}, []string{"01234567", "ok"}},
		{"a long line over writes", []string{"0123", "4567", "89ab", "cd\nok"}, []string{"01234567", "ok"}},
		{"exactly the limit", []string{"01234567\n"}, []string{"01234567"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := []string{}
			w := &lineWriter{max: 8, emit: func(b []byte) { got = append(got, string(b)) }}
			for _, s := range c.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("write %q: %d %v", s, n, err)
				}
			}
			w.Close()
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseLogLine(t *testing.T) {
	at := time.Date(2026, 12, 3, 5, 42, 57, 772422248, time.UTC)
	long := strings.Repeat("é", MaxLogLine) // two bytes each: cut at a character
	cases := []struct {
		in       string
		wantAt   time.Time
		wantText string
	}{
		{"2026-12-03T05:42:57.772422248Z listening on :8080", at, "listening on :8080"},
		{"2026-12-03T05:42:57.772422248Z a windows line\r", at, "a windows line"},
		{"2026-12-03T05:42:57.772422248Z ", at, ""},
	}
	for _, c := range cases {
		gotAt, gotText := parseLogLine(c.in)
		if !gotAt.Equal(c.wantAt) || gotText != c.wantText {
			t.Errorf("parseLogLine(%q) = %v %q, want %v %q", c.in, gotAt, gotText, c.wantAt, c.wantText)
		}
	}
	if _, text := parseLogLine("2026-12-03T05:42:57.772422248Z " + long); len(text) > MaxLogLine || !strings.HasSuffix(text, "…") || !strings.HasPrefix(long, strings.TrimSuffix(text, "…")) {
		t.Fatalf("a long line kept %d bytes, ending %q", len(text), text[len(text)-8:])
	}
	if at, text := parseLogLine("no time here"); text != "no time here" || time.Since(at) > time.Minute {
		t.Fatalf("a line without a time: %v %q", at, text)
	}
}

func TestLogNames(t *testing.T) {
	withLog := func(opts map[string]any) taskdef.Container {
		return taskdef.Container{Name: "web", Extra: map[string]any{"logConfiguration": map[string]any{"logDriver": "awslogs", "options": opts}}}
	}
	cases := []struct {
		name          string
		c             taskdef.Container
		group, stream string
	}{
		{"no log configuration", taskdef.Container{Name: "web"}, "/slipway/shop/staging/api", "web/abc123"},
		{"awslogs group and prefix", withLog(map[string]any{"awslogs-group": "/ecs/shop", "awslogs-stream-prefix": "ecs", "awslogs-region": "eu-west-1"}), "/ecs/shop", "ecs/web/abc123"},
		{"a prefix only", withLog(map[string]any{"awslogs-stream-prefix": "api"}), "/slipway/shop/staging/api", "api/web/abc123"},
		{"a group only", withLog(map[string]any{"awslogs-group": "shop"}), "shop", "web/abc123"},
		{"options of another shape", taskdef.Container{Name: "web", Extra: map[string]any{"logConfiguration": "awslogs"}}, "/slipway/shop/staging/api", "web/abc123"},
	}
	// As a registered task definition carries it.
	def, _, err := taskdef.Parse([]byte(`{"family":"shop","containerDefinitions":[{"name":"web","image":"x",
		"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/shop-web","awslogs-stream-prefix":"shop"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name          string
		c             taskdef.Container
		group, stream string
	}{"a parsed task definition", def.ContainerDefinitions[0], "/ecs/shop-web", "shop/web/abc123"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			group, stream := LogNames("shop", "staging", "api", "abc123", c.c)
			if group != c.group || stream != c.stream {
				t.Fatalf("got %s %s, want %s %s", group, stream, c.group, c.stream)
			}
		})
	}
}

func TestIgnoredLogConfiguration(t *testing.T) {
	cases := []struct {
		name string
		lc   string // the first container's logConfiguration, JSON
		want []string
	}{
		{"awslogs group and prefix are used", `{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/x","awslogs-stream-prefix":"ecs"}}`,
			[]string{"links"}},
		{"the rest of awslogs is ignored", `{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/x","awslogs-region":"eu-west-1","awslogs-create-group":"true"},"secretOptions":[]}`,
			[]string{"containerDefinitions[0].logConfiguration.options.awslogs-create-group", "containerDefinitions[0].logConfiguration.options.awslogs-region",
				"containerDefinitions[0].logConfiguration.secretOptions", "links"}},
		{"another driver", `{"logDriver":"splunk","options":{"splunk-url":"https://x"}}`,
			[]string{"containerDefinitions[0].logConfiguration.logDriver", "containerDefinitions[0].logConfiguration.options.splunk-url", "links"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			def, ignored, err := taskdef.Parse([]byte(`{"family":"x","containerDefinitions":[{"name":"web","image":"x","logConfiguration":` + c.lc + `}]}`))
			if err != nil {
				t.Fatal(err)
			}
			// Another ignored field stays as it was.
			got := IgnoredLogConfiguration(def, append(ignored, "links"))
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}
}
