package build

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// Where CodeBuild documents the behaviour each case checks.
const (
	docShells = "https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-cmd.html" // 0.1: each command in its own shell; 0.2: not
	docSpec   = "https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html"    // phases, finally, on-failure, CODEBUILD_BUILD_SUCCEEDING
	docPhases = "https://docs.aws.amazon.com/codebuild/latest/userguide/view-build-details-phases.html"
	docECS    = "https://docs.aws.amazon.com/codepipeline/latest/userguide/ecs-cd-pipeline.html" // the ECS tutorial's buildspec
)

// TestCodeBuildConformance runs buildspecs whose outcome CodeBuild
// documents and checks Slipway's: phase statuses, exit code, and lines the
// log must or must not hold.
func TestCodeBuildConformance(t *testing.T) {
	cases := []struct {
		name, cite string
		buildspec  string
		env        []string
		phases     string // name:STATUS …
		exit       int
		logHas     []string
		logLacks   []string
	}{
		{
			name: "the ECS tutorial: variables set in pre_build are there in build and post_build", cite: docECS,
			buildspec: `version: 0.2
phases:
  pre_build:
    commands:
      - echo Logging in to the registry...
      - REPOSITORY_URI=registry.example/hello
      - COMMIT_HASH=$(echo $CODEBUILD_RESOLVED_SOURCE_VERSION | cut -c 1-7)
      - IMAGE_TAG=${COMMIT_HASH:=latest}
  build:
    commands:
      - echo Build started on $(date +%Y)
      - echo "tag $REPOSITORY_URI:$IMAGE_TAG"
  post_build:
    commands:
      - printf '[{"name":"web","imageUri":"%s"}]' $REPOSITORY_URI:$IMAGE_TAG > imagedefinitions.json
      - cat imagedefinitions.json
`,
			env:    []string{"CODEBUILD_RESOLVED_SOURCE_VERSION=0123456789abcdef"},
			phases: "pre_build:SUCCEEDED build:SUCCEEDED post_build:SUCCEEDED",
			logHas: []string{"tag registry.example/hello:0123456", `"imageUri":"registry.example/hello:0123456"`},
		},
		{
			name: "0.2: a cd and an exported variable carry to the next phase", cite: docShells,
			buildspec: "version: 0.2\nphases:\n  install: {commands: [\"mkdir -p sub && cd sub\", \"export A=1\"]}\n  build: {commands: [\"echo at=$(basename $PWD) a=$A\"]}\n",
			phases:    "install:SUCCEEDED build:SUCCEEDED", logHas: []string{"at=sub a=1"},
		},
		{
			name: "0.1: every command in a shell of its own", cite: docShells,
			buildspec: "version: 0.1\nphases:\n  build: {commands: [\"mkdir -p sub && cd sub\", \"A=1\", \"echo at=$(basename $PWD) a=$A.\"]}\n",
			phases:    "build:SUCCEEDED", logLacks: []string{"at=sub"}, logHas: []string{"a=."},
		},
		{
			name: "a command line's own status decides: false && echo never fails", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"false && echo ran-$((1+1))\", \"echo after\"]}\n",
			phases:    "build:FAILED", exit: 1, logLacks: []string{"ran-2", "after\n"},
		},
		{
			name: "a failing command inside a line goes on to the line's end, whose status decides", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"false > out.txt; status=$?; echo report written status=$status; test $status -eq 0\", \"echo never\"]}\n",
			phases:    "build:FAILED", exit: 1, logHas: []string{"report written status=1"}, logLacks: []string{"never"},
		},
		{
			name: "a line whose last command succeeds succeeds", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"false; echo recovered\", \"echo next\"]}\n",
			phases:    "build:SUCCEEDED", logHas: []string{"recovered", "next"},
		},
		{
			name: "exit inside a command fails the phase with its status; post_build still runs", cite: docPhases,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"echo one\", \"exit 7\", \"echo two\"]}\n  post_build: {commands: [\"echo s=$CODEBUILD_BUILD_SUCCEEDING\"]}\n",
			phases:    "build:FAILED post_build:SUCCEEDED", exit: 7, logHas: []string{"one", "s=0"}, logLacks: []string{"two"},
		},
		{
			name: "post_build sees CODEBUILD_BUILD_SUCCEEDING=0 after a failed build, in the same shell", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"KEEP=kept\", \"false\"]}\n  post_build: {commands: [\"echo s=$CODEBUILD_BUILD_SUCCEEDING keep=$KEEP\"]}\n",
			phases:    "build:FAILED post_build:SUCCEEDED", exit: 1, logHas: []string{"s=0 keep=kept"},
		},
		{
			name: "a failed install skips every later phase", cite: docPhases,
			buildspec: "version: 0.2\nphases:\n  install: {commands: [\"false\"]}\n  build: {commands: [\"echo b\"]}\n  post_build: {commands: [\"echo p\"]}\n",
			phases:    "install:FAILED build:SKIPPED post_build:SKIPPED", exit: 1,
		},
		{
			name: "on-failure: CONTINUE goes on to the next phase", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  pre_build: {on-failure: CONTINUE, commands: [\"exit 4\"]}\n  build: {commands: [\"echo built\"]}\n",
			phases:    "pre_build:FAILED build:SUCCEEDED", exit: 4, logHas: []string{"built"},
		},
		{
			name: "on-failure: ABORT on build stops the build: no post_build", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {on-failure: ABORT, commands: [\"false\"]}\n  post_build: {commands: [\"echo post\"]}\n",
			phases:    "build:FAILED post_build:SKIPPED", exit: 1, logLacks: []string{"post\n"},
		},
		{
			name: "finally runs after a failed command, in the same shell", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"STEP=compile\", \"false\"], finally: [\"echo cleanup after $STEP\"]}\n",
			phases:    "build:FAILED", exit: 1, logHas: []string{"cleanup after compile"},
		},
		{
			name: "a failing finally fails a phase whose commands succeeded", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"echo ok\"], finally: [\"exit 5\"]}\n",
			phases:    "build:FAILED", exit: 5,
		},
		{
			name: "a command that reads stdin does not swallow the next commands", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"cat; read -r line || echo read-nothing\", \"echo still-here\"]}\n",
			phases:    "build:SUCCEEDED", logHas: []string{"read-nothing", "still-here"},
		},
		{
			name: "a multi-line command is one command line", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build:\n    commands:\n      - |\n        if [ -n \"$HOME\" ]; then\n          echo multi-line\n        fi\n      - echo after\n",
			phases:    "build:SUCCEEDED", logHas: []string{"multi-line", "after"},
		},
		{
			name: "set -e in one command and a failure in the next: the shell ends, the phase fails", cite: docSpec,
			buildspec: "version: 0.2\nphases:\n  build: {commands: [\"set -e\", \"false\", \"echo never\"]}\n  post_build: {commands: [\"echo post runs\"]}\n",
			phases:    "build:FAILED post_build:SUCCEEDED", exit: 1, logHas: []string{"post runs"}, logLacks: []string{"never"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := Parse("buildspec.yml", []byte(c.buildspec))
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := Run(ctx, Job{Spec: spec, Dir: t.TempDir(), Env: c.env, Log: &log})
			var got []string
			for _, p := range res.Phases {
				got = append(got, p.Name+":"+p.Status)
			}
			if strings.Join(got, " ") != c.phases || res.ExitCode != c.exit {
				t.Fatalf("phases %v exit %d, want %s exit %d (CodeBuild: %s)\n%s", got, res.ExitCode, c.phases, c.exit, c.cite, log.String())
			}
			for _, s := range c.logHas {
				if !strings.Contains(log.String(), s) {
					t.Errorf("log lacks %q (CodeBuild: %s):\n%s", s, c.cite, log.String())
				}
			}
			for _, s := range c.logLacks {
				if strings.Contains(log.String(), s) {
					t.Errorf("log has %q (CodeBuild: %s):\n%s", s, c.cite, log.String())
				}
			}
		})
	}
}
