package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPhaseFailureFlow(t *testing.T) {
	cases := []struct {
		name      string
		buildspec string
		want      []string // phase:status in order
		succeeded bool
		exit      int
		logHas    []string
		logLacks  []string
	}{
		{"all succeed", `version: 0.2
phases:
  install: {commands: ["echo i"]}
  pre_build: {commands: ["echo p"]}
  build: {commands: ["echo b"]}
  post_build: {commands: ["echo s=$CODEBUILD_BUILD_SUCCEEDING"]}
`, []string{"install:SUCCEEDED", "pre_build:SUCCEEDED", "build:SUCCEEDED", "post_build:SUCCEEDED"}, true, 0, []string{"s=1"}, nil},
		{"install fails: rest skipped, finally runs", `version: 0.2
phases:
  install: {commands: ["exit 3", "echo never"], finally: ["echo cleanup"]}
  build: {commands: ["echo b"]}
  post_build: {commands: ["echo post"]}
`, []string{"install:FAILED", "build:SKIPPED", "post_build:SKIPPED"}, false, 3, []string{"cleanup"}, []string{"never", "post\n"}},
		{"pre_build fails: rest skipped", `version: 0.2
phases:
  pre_build: {commands: ["false"]}
  build: {commands: ["echo b"]}
`, []string{"pre_build:FAILED", "build:SKIPPED"}, false, 1, nil, nil},
		{"build fails: post_build runs with SUCCEEDING=0", `version: 0.2
phases:
  build: {commands: ["echo one", "exit 7", "echo two"]}
  post_build: {commands: ["echo s=$CODEBUILD_BUILD_SUCCEEDING"]}
`, []string{"build:FAILED", "post_build:SUCCEEDED"}, false, 7, []string{"one", "s=0"}, []string{"two"}},
		{"on-failure CONTINUE", `version: 0.2
phases:
  install: {on-failure: CONTINUE, commands: ["exit 4"]}
  build: {commands: ["echo built"]}
`, []string{"install:FAILED", "build:SUCCEEDED"}, false, 4, []string{"built"}, nil},
		{"finally failure fails the phase", `version: 0.2
phases:
  build: {commands: ["echo ok"], finally: ["exit 5"]}
`, []string{"build:FAILED"}, false, 5, nil, nil},
		{"one shell per phase: cd and variables carry", `version: 0.2
env:
  variables: {GREETING: hello}
phases:
  build: {commands: ["mkdir -p sub && cd sub", "X=$GREETING", "echo at=$(basename $PWD) x=$X"]}
`, []string{"build:SUCCEEDED"}, true, 0, []string{"at=sub x=hello"}, nil},
		{"command not found", `version: 0.2
phases:
  build: {commands: ["no-such-command-slipway"]}
`, []string{"build:FAILED"}, false, 127, []string{"not found"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := Parse("buildspec.yml", []byte(c.buildspec))
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			env := []string{}
			for k, v := range spec.Env.Variables {
				env = append(env, k+"="+v)
			}
			res := Run(context.Background(), Job{Spec: spec, Dir: t.TempDir(), Env: env, Log: &log})
			var got []string
			for _, p := range res.Phases {
				got = append(got, p.Name+":"+p.Status)
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Fatalf("phases %v, want %v\n%s", got, c.want, log.String())
			}
			if res.Succeeded != c.succeeded || res.ExitCode != c.exit {
				t.Fatalf("succeeded=%v exit=%d, want %v %d (%s)", res.Succeeded, res.ExitCode, c.succeeded, c.exit, res.Reason)
			}
			if !c.succeeded && res.Reason == "" {
				t.Fatal("a failure needs a reason")
			}
			for _, s := range c.logHas {
				if !strings.Contains(log.String(), s) {
					t.Errorf("log lacks %q:\n%s", s, log.String())
				}
			}
			for _, s := range c.logLacks {
				if strings.Contains(log.String(), s) {
					t.Errorf("log has %q:\n%s", s, log.String())
				}
			}
		})
	}
}

func TestTimeoutKillsWholeProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	spec, err := Parse("buildspec.yml", []byte(`version: 0.2
phases:
  build:
    commands:
      - sleep 300 & echo $! > child.pid; wait
  post_build:
    commands: ["echo post"]
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var log bytes.Buffer
	start := time.Now()
	res := Run(ctx, Job{Spec: spec, Dir: dir, Log: &log})
	if time.Since(start) > 10*time.Second {
		t.Fatal("timeout did not stop the build")
	}
	if res.Phases[0].Status != TimedOut || res.Phases[1].Status != Skipped {
		t.Fatalf("phases %+v", res.Phases)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if out, _ := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output(); strings.HasPrefix(string(out), "Z") {
			break // reaped by init soon; it no longer runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("background child %d survived the timeout", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseBuildspecErrors(t *testing.T) {
	cases := map[string]string{
		"version: 0.3\n": "buildspec.yml:1:10: version",
		"version: 0.2\nphases:\n  biuld: {commands: [x]}\n":                "buildspec.yml:3:3: phases.biuld: unknown key",
		"version: 0.2\nphases:\n  build: {on-failure: RETRY}\n":            "must be ABORT or CONTINUE",
		"version: 0.2\nenv:\n  secrets-manager: {A: \"arn:aws:s3:::b\"}\n": "buildspec.yml:3:24: env.secrets-manager.A: \"arn:aws:s3:::b\": only Secrets Manager and SSM",
		"version: 0.2\nartifacts:\n  discard-paths: maybe\n":               "buildspec.yml:3:18: artifacts.discard-paths: \"maybe\" must be yes or no",
		"version: 0.2\nphases:\n  build:\n    commands: {go: test}\n":      "buildspec.yml:4:15: phases.build.commands: must be a list",
		"version: 0.2\nenv:\n  variables: {A: {b: c}}\n":                   "buildspec.yml:3:18: env.variables.A: must be a single value, not a mapping",
	}
	for in, want := range cases {
		if _, err := Parse("buildspec.yml", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestCollectArtifacts(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"out/bin/app", "out/readme.txt", "src/main.go"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	files, err := Collect(dir, Artifacts{Files: []string{"**/*"}, BaseDirectory: "out"})
	if err != nil || len(files) != 2 || files[0].Name != "bin/app" {
		t.Fatalf("base-directory: %v %v", files, err)
	}
	files, err = Collect(dir, Artifacts{Files: []string{"out/**/*"}, DiscardPaths: true})
	if err != nil || len(files) != 2 || files[0].Name != "app" {
		t.Fatalf("discard-paths: %v %v", files, err)
	}
	if _, err := Collect(dir, Artifacts{Files: []string{"*.jar"}}); err == nil || !strings.Contains(err.Error(), "matched no file") {
		t.Fatalf("no match: %v", err)
	}
	if _, err := Collect(dir, Artifacts{Files: []string{"x"}, BaseDirectory: "../etc"}); err == nil {
		t.Fatal("base-directory outside the source dir accepted")
	}
}

// TestCollectRefusesLinksOut: a link a build made (or git carried) that
// leads out of the source directory never brings a host file into an
// artifact, report or cache: it is refused, naming it.
func TestCollectRefusesLinksOut(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "admin.token"), []byte("slw_secret"), 0o600)
	for _, c := range []struct {
		name   string
		setup  func(dir string)
		a      Artifacts
		refuse string
	}{
		{"absolute link", func(d string) { os.Symlink(filepath.Join(outside, "admin.token"), filepath.Join(d, "out.txt")) },
			Artifacts{Files: []string{"out.txt"}}, "out.txt is a symbolic link that leads outside"},
		{"relative chain", func(d string) {
			os.Mkdir(filepath.Join(d, "a"), 0o755)
			os.Symlink("..", filepath.Join(d, "a", "up"))
			os.Symlink("a/up/../"+filepath.Base(outside)+"/admin.token", filepath.Join(d, "x"))
		}, Artifacts{Files: []string{"x"}}, "x is a symbolic link that leads outside"},
		{"base-directory through a link", func(d string) { os.Symlink(outside, filepath.Join(d, "dist")) },
			Artifacts{Files: []string{"**/*"}, BaseDirectory: "dist"}, "artifacts.base-directory"},
		{"base-directory ../", func(string) {}, Artifacts{Files: []string{"*"}, BaseDirectory: "../" + filepath.Base(outside)}, "must be inside"},
		{"a link inside is kept", func(d string) {
			os.WriteFile(filepath.Join(d, "real.txt"), []byte("ok"), 0o644)
			os.Symlink("real.txt", filepath.Join(d, "alias.txt"))
		}, Artifacts{Files: []string{"alias.txt"}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			os.Mkdir(dir, 0o755)
			c.setup(dir)
			files, err := Collect(dir, c.a)
			if c.refuse == "" {
				if err != nil || len(files) != 1 {
					t.Fatalf("%v %v", files, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.refuse) {
				t.Fatalf("got %v %v, want a refusal saying %q", files, err, c.refuse)
			}
		})
	}
}

// The review's attacks on what the server reads back: the exported
// variables file swapped for a link to the server's environment, and a
// report that is a link to a FIFO (opening it would block forever).
func TestServerReadsOnlyTheBuildsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "environ")
	os.WriteFile(secret, []byte("SLIPWAY_MASTER_KEY=feedface\x00"), 0o600)
	vars := filepath.Join(dir, "exported")
	os.Symlink(secret, vars)
	spec := &Spec{Version: "0.2"}
	spec.Env.ExportedVariables = []string{"SLIPWAY_MASTER_KEY"}
	if got := readExported(Job{Spec: spec, VarsFile: vars}); len(got) != 0 {
		t.Errorf("exported variables read through a link: %v", got)
	}
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	if err := syscall.Mkfifo(filepath.Join(src, "f"), 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	os.Symlink("f", filepath.Join(src, "report.xml"))
	os.WriteFile(filepath.Join(src, "real.xml"), []byte("<testsuites/>"), 0o644)
	files, err := Collect(src, Artifacts{Files: []string{"*.xml"}})
	if err != nil || len(files) != 1 || files[0].Name != "real.xml" {
		t.Fatalf("collected %v %v, want real.xml alone", files, err)
	}
}

// A build that prints the status marker itself (the shell's function is
// there to call) decides only its own result; it cannot wedge the
// server's reading of its output until the timeout.
func TestForgedStatusesDoNotWedgeTheBuild(t *testing.T) {
	spec, err := Parse("buildspec.yml", []byte("version: 0.2\nphases:\n  build:\n    commands:\n      - for i in 1 2 3 4 5 6; do __slipway_status 0; done; echo forged\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var log bytes.Buffer
	res := Run(ctx, Job{Spec: spec, Dir: t.TempDir(), Log: &log})
	if ctx.Err() != nil || res.Phases[0].Status == TimedOut {
		t.Fatalf("the build hung on its own markers: %+v\n%s", res, log.String())
	}
}
