package server

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// seedECSWorkflow is a "Deploy to Amazon ECS" workflow in the shape the
// seeds keep (GitHub's starter workflow with a tag trigger): ECR login,
// docker build and push by hand with the tag from ##[set-output, the task
// definition rendered and deployed with a wait for stability, behind
// environment: production. Only the go build step is the app's own.
const seedECSWorkflow = `name: Deploy to Amazon ECS

on:
  push:
    tags:
      - 'v*'

env:
  AWS_REGION: us-east-1
  ECR_REPOSITORY: %[1]s
  ECS_SERVICE: web
  ECS_CLUSTER: production
  ECS_TASK_DEFINITION: .aws/task-definition.json
  CONTAINER_NAME: web

permissions:
  contents: read

jobs:
  deploy:
    name: Deploy
    runs-on: ubuntu-latest
    environment: production

    steps:
    - name: Checkout
      uses: actions/checkout@v4

    - name: Configure AWS credentials
      uses: aws-actions/configure-aws-credentials@v1
      with:
        aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}
        aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
        aws-region: ${{ env.AWS_REGION }}

    - name: Login to Amazon ECR
      id: login-ecr
      uses: aws-actions/amazon-ecr-login@v1

    - name: Get the version
      id: get_version
      run: echo ::set-output name=VERSION::${GITHUB_REF/refs\/tags\//}

    - name: Compile
      run: CGO_ENABLED=0 go build -o web .

    - name: Build, tag, and push image to Amazon ECR
      id: build-image
      env:
        ECR_REGISTRY: ${{ steps.login-ecr.outputs.registry }}
        IMAGE_TAG: ${{ steps.get_version.outputs.VERSION }}
      run: |
        docker build -q -t $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG .
        docker push $ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG
        echo "##[set-output name=image;]$ECR_REGISTRY/$ECR_REPOSITORY:$IMAGE_TAG"

    - name: Fill in the new image ID in the Amazon ECS task definition
      id: task-def
      uses: aws-actions/amazon-ecs-render-task-definition@v1
      with:
        task-definition: ${{ env.ECS_TASK_DEFINITION }}
        container-name: ${{ env.CONTAINER_NAME }}
        image: ${{ steps.build-image.outputs.image }}

    - name: Deploy Amazon ECS task definition
      uses: aws-actions/amazon-ecs-deploy-task-definition@v1
      with:
        task-definition: ${{ steps.task-def.outputs.task-definition }}
        service: ${{ env.ECS_SERVICE }}
        cluster: ${{ env.ECS_CLUSTER }}
        wait-for-service-stability: true
`

// TestIntegrationWorkflowSeedECSDeploys pushes a tag to a repository that
// keeps only a GitHub Actions workflow (no slipway.yaml): the workflow runs
// unchanged, waits for approval at environment: production, builds and
// pushes the image tagged with the tag name, and rolls the existing
// service out to it.
func TestIntegrationWorkflowSeedECSDeploys(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "wfecs")
	t.Cleanup(func() { removeImagesOf(app) })
	port := freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "before"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/production/services", srv.Admin, map[string]any{"name": "web",
		"task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": port, "health_check_path": "/health"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	if code, body := srv.call("PUT", "/api/v1/apps/"+app+"/build", srv.Admin, map[string]any{"docker_access": true}); code != 200 {
		t.Fatalf("docker access: %d %v", code, body)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if code, body := srv.call("PUT", "/api/v1/secrets/"+name, srv.Admin, map[string]string{"app": app, "value": "value-of-" + strings.ToLower(name)}); code != 200 && code != 201 {
			t.Fatalf("secret %s: %d %v", name, code, body)
		}
	}
	webSource, err := os.ReadFile("testdata/webapp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	w := newWork(t)
	w.commit("app", map[string]string{
		"main.go":                       string(webSource),
		"go.mod":                        "module webapp\n\ngo 1.22\n",
		"Dockerfile":                    "FROM scratch\nLABEL slipway.test=1\nCOPY web /web\nENTRYPOINT [\"/web\"]\n",
		".aws/task-definition.json":     webTaskDef(app, "placeholder", "from-workflow"),
		".github/workflows/aws.yml":     fmt.Sprintf(seedECSWorkflow, app),
		".github/workflows/ignored.yml": "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: exit 1\n",
	})
	out := w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	if !strings.Contains(out, "no run") {
		t.Fatalf("a branch push started a run of a tags-only workflow: %s", out)
	}
	w.git("tag", "v1.2.3")
	out = w.git("push", repoURL(srv.URL, srv.Admin, app), "v1.2.3")
	if !strings.Contains(out, "run 1 started") {
		t.Fatalf("the tag push did not say its run started: %s", out)
	}
	run := srv.waitRunState(1, "waiting", 60*time.Second)
	if run["workflow"] != ".github/workflows/aws.yml" {
		t.Fatalf("run's workflow: %v", run["workflow"])
	}
	if code, body := srv.call("POST", "/api/v1/runs/1/approve", srv.Admin, map[string]string{"comment": "ship it"}); code != 200 {
		t.Fatalf("approve: %d %v", code, body)
	}
	run = srv.waitRun(1, 240*time.Second)
	logs := srv.logText(1)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], logs)
	}
	if strings.Contains(logs, "value-of-aws") {
		t.Fatalf("a secret reached the log:\n%s", logs)
	}
	if _, list := srv.call("GET", "/api/v1/images?repository="+app, srv.Admin, nil); !strings.Contains(fmt.Sprint(list), "v1.2.3") {
		t.Fatalf("the image tagged with the tag name was not pushed: %v\n%s", list, logs)
	}
	code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	if code != 200 || !strings.HasPrefix(body, "version=from-workflow") {
		t.Fatalf("after the run the service serves %d %q, not the new version\n%s", code, body, logs)
	}
	for _, want := range []string{"Registered " + app + ":2", "Checked out refs/tags/v1.2.3"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

// twoJobWorkflow is a seed-003-style pipeline as two jobs: build pushes the
// image with docker/build-push-action and uploads the rendered task
// definition and the appspec as an artifact; deploy downloads them and
// deploys blue/green through CodeDeploy's appspec.
const twoJobWorkflow = `name: build and deploy
on:
  push:
    branches: [main]
    paths-ignore: ['docs/**']
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      image: ${{ steps.image.outputs.uri }}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@v5
        with:
          go-version: '1.22'
      - run: CGO_ENABLED=0 go build -o web .
      - id: login-ecr
        uses: aws-actions/amazon-ecr-login@v2
      - id: image
        run: echo "uri=${{ steps.login-ecr.outputs.registry }}/${{ github.repository }}:${{ github.sha }}" >> "$GITHUB_OUTPUT"
      - uses: docker/setup-buildx-action@v3
      - uses: docker/build-push-action@v6
        with:
          context: .
          push: true
          tags: ${{ steps.image.outputs.uri }}
      - id: render
        uses: aws-actions/amazon-ecs-render-task-definition@v1
        with:
          task-definition: taskdef.json
          container-name: web
          image: ${{ steps.image.outputs.uri }}
      - run: cp "${{ steps.render.outputs.task-definition }}" rendered.json
      - uses: actions/upload-artifact@v4
        with:
          name: deploy-files
          path: |
            rendered.json
            appspec.yaml
  deploy:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: deploy-files
          path: out
      - run: test -f out/rendered.json && grep -q '${{ needs.build.outputs.image }}' out/rendered.json
      - uses: aws-actions/amazon-ecs-deploy-task-definition@v2
        with:
          task-definition: out/rendered.json
          service: web
          cluster: staging
          codedeploy-appspec: out/appspec.yaml
          wait-for-service-stability: true
`

// TestIntegrationWorkflowTwoJobsBlueGreen runs the two-job workflow on a
// branch push: the deploy job starts after build, reads its outputs and
// artifact, and the service ends on the new revision through blue/green.
func TestIntegrationWorkflowTwoJobsBlueGreen(t *testing.T) {
	image := webAppImage(t)
	srv, app := startProcApp(t, "wf2j")
	t.Cleanup(func() { removeImagesOf(app) })
	port, testPort := freePort(t), freePort(t)
	rev1 := srv.registerTaskDef(webTaskDef(app, image, "before"))
	if code, body := srv.call("POST", "/api/v1/apps/"+app+"/envs/staging/services", srv.Admin, map[string]any{"name": "web",
		"task_definition": fmt.Sprintf("%s:%d", app, rev1), "desired_count": 1,
		"load_balancer": map[string]any{"container_name": "web", "container_port": 8080, "listener_port": port, "test_listener_port": testPort,
			"health_check_path": "/health", "health_check_interval": "1s", "deregistration_delay": "1s"}}); code != 201 {
		t.Fatalf("service: %d %v", code, body)
	}
	webSource, err := os.ReadFile("testdata/webapp/main.go")
	if err != nil {
		t.Fatal(err)
	}
	w := newWork(t)
	w.commit("app", map[string]string{
		"main.go":                     string(webSource),
		"go.mod":                      "module webapp\n\ngo 1.22\n",
		"Dockerfile":                  "FROM scratch\nLABEL slipway.test=2\nCOPY web /web\nENTRYPOINT [\"/web\"]\n",
		"taskdef.json":                webTaskDef(app, "placeholder", "two-jobs"),
		"appspec.yaml":                "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: \"<TASK_DEFINITION>\"\n        LoadBalancerInfo:\n          ContainerName: \"web\"\n          ContainerPort: 8080\n",
		".github/workflows/main.yaml": twoJobWorkflow,
	})
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run := srv.waitRun(1, 240*time.Second)
	logs := srv.logText(1)
	if run["state"] != "succeeded" {
		t.Fatalf("run %v: %v\n%s", run["state"], run["reason"], logs)
	}
	acts := actionsOf(run)
	if acts["build/build"]["state"] != "succeeded" || acts["deploy/deploy"]["state"] != "succeeded" {
		t.Fatalf("jobs: %v", acts)
	}
	if !strings.Contains(logs, "blue") && !strings.Contains(logs, "BlueGreen") && !strings.Contains(logs, "green") {
		t.Errorf("the deploy job's log does not show a blue/green deployment:\n%s", logs)
	}
	code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	if code != 200 || !strings.HasPrefix(body, "version=two-jobs") {
		t.Fatalf("after the run the service serves %d %q\n%s", code, body, logs)
	}
}

const featuresWorkflow = `name: features
on:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      greeting:
        type: choice
        options: [hello, hi]
        default: hello
      loud:
        type: boolean
        default: false
env:
  WF_LEVEL: wf
defaults:
  run:
    shell: bash
jobs:
  prepare:
    runs-on: ubuntu-latest
    outputs:
      word: ${{ steps.out.outputs.word }}
      single: ${{ steps.out.outputs.single }}
    steps:
      - id: out
        run: |
          echo 'single=one' >> "$GITHUB_OUTPUT"
          {
            echo 'word<<EOF'
            echo 'multi'
            echo 'line'
            echo 'EOF'
          } >> "$GITHUB_OUTPUT"
      - run: echo "FROM_ENV=set-by-step" >> "$GITHUB_ENV"
      - run: mkdir -p "$RUNNER_TEMP/bin" && printf '#!/bin/sh\necho tool-ran\n' > "$RUNNER_TEMP/bin/mytool" && chmod +x "$RUNNER_TEMP/bin/mytool" && echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
      - run: |
          echo "env=$FROM_ENV wf=$WF_LEVEL"
          mytool
          echo "::add-mask::hidden-value-42"
          echo "the secret is hidden-value-42"
          echo "::warning file=main.go,line=3::look here"
          echo "::group::details"
          echo "inside the group"
          echo "::endgroup::"
          echo "### Summary from prepare" >> "$GITHUB_STEP_SUMMARY"
      - name: fails but continues
        continue-on-error: true
        run: exit 3
      - name: runs only on failure
        if: failure()
        run: echo never-printed
      - name: greeting
        working-directory: sub
        run: echo "greeting=${{ inputs.greeting }} event=${{ github.event_name }} loud=${{ inputs.loud }} dir=$(basename $PWD)"
  test:
    needs: prepare
    runs-on: ubuntu-latest
    strategy:
      matrix:
        letter: [a, b]
        n: [1, 2]
        exclude:
          - letter: b
            n: 2
        include:
          - letter: c
            n: 9
    steps:
      - run: echo "combo ${{ matrix.letter }}-${{ matrix.n }} single=${{ needs.prepare.outputs.single }}"
      - if: matrix.letter == 'c'
        run: echo "only for c"
  on-failure:
    needs: test
    if: failure()
    runs-on: ubuntu-latest
    steps:
      - run: echo never-runs
  always:
    needs: [prepare, test]
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "always ran after ${{ needs.test.result }}"
`

const failingWorkflow = `on: push
jobs:
  unknown-action:
    runs-on: ubuntu-latest
    steps:
      - uses: someone/something@v1
  windows:
    runs-on: windows-latest
    steps:
      - run: echo hi
  missing-secret:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ secrets.NOT_SET_ANYWHERE }}
`

// TestIntegrationWorkflowFeatures runs workflows through the features
// teams' files use: command files, workflow commands, masks, annotations,
// continue-on-error, status functions, a matrix with include and exclude,
// needs outputs, job-level if, workflow_dispatch with inputs; and the
// refusals: a malformed file named by line and column in git push's
// output, an action not built in, a runner label no executor has, a secret
// that is not set.
func TestIntegrationWorkflowFeatures(t *testing.T) {
	e := newEnv(t)
	e.createApp("wff")
	w := newWork(t)
	w.commit("workflows", map[string]string{
		"sub/keep":                      "",
		".github/workflows/ci.yml":      featuresWorkflow,
		".github/workflows/failing.yml": failingWorkflow,
		".github/workflows/broken.yml":  "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: echo\n",
	})
	out, err := w.run("push", repoURL(e.URL, e.Admin, "wff"), "main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	for _, want := range []string{"run 1 started", "run 2 started", ".github/workflows/broken.yml:5:5"} {
		if !strings.Contains(out, want) {
			t.Errorf("git push's output lacks %q:\n%s", want, out)
		}
	}
	run := e.waitRun(1, 180*time.Second)
	logs := e.logText(1)
	if run["state"] != "succeeded" {
		t.Fatalf("run 1 %v: %v\n%s", run["state"], run["reason"], logs)
	}
	acts := actionsOf(run)
	for _, name := range []string{"test/test (a, 1)", "test/test (a, 2)", "test/test (b, 1)", "test/test (c, 9)"} {
		if acts[name]["state"] != "succeeded" {
			t.Errorf("matrix combination %s: %v", name, acts[name])
		}
	}
	if _, ok := acts["test/test (b, 2)"]; ok {
		t.Errorf("the excluded combination ran")
	}
	if acts["on-failure/on-failure"]["state"] != "skipped" || acts["always/always"]["state"] != "succeeded" {
		t.Errorf("job if: on-failure %v, always %v", acts["on-failure/on-failure"], acts["always/always"])
	}
	for _, want := range []string{"env=set-by-step wf=wf", "tool-ran", "the secret is ***", "##[warning]main.go:3: look here",
		"##[group]details", "inside the group", "combo c-9 single=one", "only for c", "always ran after success",
		"greeting=hello event=push loud=false dir=sub", "(continue-on-error: the job goes on)"} {
		if !strings.Contains(logs, want) {
			t.Errorf("run 1's log lacks %q", want)
		}
	}
	for _, never := range []string{"hidden-value-42", "never-printed", "never-runs"} {
		if strings.Contains(logs, never) {
			t.Errorf("run 1's log holds %q", never)
		}
	}
	if n := strings.Count(logs, "\nonly for c\n"); n != 1 {
		t.Errorf("the step for c ran %d times", n)
	}
	prep := acts["prepare/prepare"]
	if !strings.Contains(fmt.Sprint(prep["summary"]), "### Summary from prepare") || !strings.Contains(fmt.Sprint(prep["annotations"]), "look here") {
		t.Errorf("prepare's summary and annotations: %v %v", prep["summary"], prep["annotations"])
	}

	// The run page draws the job graph and shows the summary and the
	// annotations beside the job that made them.
	client, _ := e.signin(e.Admin)
	resp, err := client.Get(e.URL + "/runs/1")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{".github/workflows/ci.yml", `needs <a href="#stage-prepare">prepare</a>`, `id="stage-test"`,
		"### Summary from prepare", "main.go:3", "look here", "state-skipped"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the run page lacks %q", want)
		}
	}

	failing := e.waitRun(2, 120*time.Second)
	if failing["state"] != "failed" {
		t.Fatalf("run 2: %v %v", failing["state"], failing["reason"])
	}
	fa := actionsOf(failing)
	for name, want := range map[string]string{
		"unknown-action/unknown-action": "someone/something@v1 is not built into Slipway",
		"windows/windows":               `no executor has the label "windows-latest"`,
		"missing-secret/missing-secret": "NOT_SET_ANYWHERE not set",
	} {
		if !strings.Contains(fmt.Sprint(fa[name]["reason"]), want) {
			t.Errorf("%s: reason %q lacks %q", name, fa[name]["reason"], want)
		}
	}

	// workflow_dispatch: inputs are checked, then the run sees them.
	for _, bad := range []struct {
		inputs map[string]string
		field  string
	}{
		{map[string]string{"nope": "x"}, "inputs.nope"},
		{map[string]string{"greeting": "hey"}, "inputs.greeting"},
		{map[string]string{"loud": "yes"}, "inputs.loud"},
	} {
		code, body := e.call("POST", "/api/v1/apps/wff/runs", e.Admin, map[string]any{"ref": "main", "workflow": "ci.yml", "inputs": bad.inputs})
		if code != 400 || errorField(body, "field") != bad.field {
			t.Errorf("inputs %v: %d %v", bad.inputs, code, body)
		}
	}
	if code, body := e.call("POST", "/api/v1/apps/wff/runs", e.Admin, map[string]any{"ref": "main", "workflow": "failing.yml"}); code != 400 || !strings.Contains(errorField(body, "message"), "workflow_dispatch") {
		t.Errorf("dispatch of a workflow without workflow_dispatch: %d %v", code, body)
	}
	code, body := e.call("POST", "/api/v1/apps/wff/runs", e.Admin, map[string]any{"ref": "main", "workflow": "ci.yml", "inputs": map[string]string{"greeting": "hi", "loud": "true"}})
	if code != 201 {
		t.Fatalf("dispatch: %d %v", code, body)
	}
	id := int(body["id"].(float64))
	run = e.waitRun(id, 180*time.Second)
	if run["state"] != "succeeded" || !strings.Contains(e.logText(id), "greeting=hi event=workflow_dispatch loud=true") {
		t.Fatalf("dispatched run %v %v:\n%s", run["state"], run["reason"], e.logText(id))
	}
}
