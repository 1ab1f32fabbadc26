package kube

import (
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

func parseDef(t *testing.T, js string) *taskdef.TaskDef {
	t.Helper()
	def, _, err := taskdef.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func TestPodFor(t *testing.T) {
	def := parseDef(t, `{"family":"web","containerDefinitions":[
		{"name":"app","image":"127.0.0.1:7070/shop/web:1","essential":true,"cpu":512,"memory":256,"memoryReservation":128,
		 "entryPoint":["/app"],"command":["-port","8080"],"user":"1000:1000","stopTimeout":12,
		 "portMappings":[{"containerPort":8080}],
		 "environment":[{"name":"MODE","value":"prod"}],
		 "secrets":[{"name":"DB_PASSWORD","valueFrom":"db-password"}],
		 "healthCheck":{"command":["CMD-SHELL","wget -q -O- localhost:8080/healthz"],"interval":5,"retries":2,"startPeriod":3},
		 "dependsOn":[{"containerName":"migrate","condition":"SUCCESS"},{"containerName":"sidecar","condition":"START"}]},
		{"name":"migrate","image":"127.0.0.1:7070/shop/web:1","essential":false,"command":["migrate"]},
		{"name":"sidecar","image":"127.0.0.1:7070/shop/side:1","essential":false}]}`)
	spec := task.Spec{App: "shop", Env: "prod", Service: "web", Group: "tg1", Family: "web", Revision: 3, Generation: 2, Def: def,
		Secrets: map[string]map[string]string{"app": {"DB_PASSWORD": "hunter2"}}}
	pod, secret, err := podFor(spec, "abc123", "inst1", pullSecretPrefix+"-shop-prod", true)
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "slipway-abc123" || pod.Labels[task.LabelTask] != "abc123" || pod.Labels[task.LabelRevision] != "3" || pod.Labels[task.LabelGeneration] != "2" || pod.Labels[task.LabelInstallation] != "inst1" {
		t.Fatalf("metadata: %+v", pod.ObjectMeta)
	}
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != "migrate" {
		t.Fatalf("init containers: %+v", pod.Spec.InitContainers)
	}
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Name != "sidecar" || pod.Spec.Containers[1].Name != "app" {
		t.Fatalf("containers not in START order: %v, %v", pod.Spec.Containers[0].Name, pod.Spec.Containers[1].Name)
	}
	app := pod.Spec.Containers[1]
	if strings.Join(app.Command, " ") != "/app" || strings.Join(app.Args, " ") != "-port 8080" {
		t.Fatalf("entryPoint/command: %v %v", app.Command, app.Args)
	}
	if cpu := app.Resources.Requests.Cpu().MilliValue(); cpu != 500 {
		t.Fatalf("cpu request %dm, want 500m", cpu)
	}
	if app.Resources.Limits.Memory().Value() != 256<<20 || app.Resources.Requests.Memory().Value() != 128<<20 {
		t.Fatalf("memory: %v", app.Resources)
	}
	if *app.SecurityContext.RunAsUser != 1000 || *app.SecurityContext.RunAsGroup != 1000 {
		t.Fatalf("user: %+v", app.SecurityContext)
	}
	if p := app.ReadinessProbe; p == nil || strings.Join(p.Exec.Command, " ") != "/bin/sh -c wget -q -O- localhost:8080/healthz" || p.PeriodSeconds != 5 || p.FailureThreshold != 2 || p.TimeoutSeconds != 5 {
		t.Fatalf("readiness: %+v", p)
	}
	if app.LivenessProbe == nil || app.LivenessProbe.InitialDelaySeconds != 3 {
		t.Fatalf("liveness: %+v", app.LivenessProbe)
	}
	if *pod.Spec.TerminationGracePeriodSeconds != 12 || pod.Spec.RestartPolicy != "Never" || *pod.Spec.AutomountServiceAccountToken {
		t.Fatalf("pod spec: %+v", pod.Spec)
	}
	if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "slipway-registry-shop-prod" {
		t.Fatalf("pull secrets: %v", pod.Spec.ImagePullSecrets)
	}
	// The secret's value is in the Secret, never in the pod.
	if secret == nil || string(secret.Data["app.DB_PASSWORD"]) != "hunter2" {
		t.Fatalf("secret: %+v", secret)
	}
	for _, e := range app.Env {
		if e.Name == "DB_PASSWORD" && (e.Value != "" || e.ValueFrom.SecretKeyRef.Name != "slipway-abc123" || e.ValueFrom.SecretKeyRef.Key != "app.DB_PASSWORD") {
			t.Fatalf("secret env: %+v", e)
		}
	}
	if strings.Contains(pod.String(), "hunter2") {
		t.Fatal("the pod spec holds a secret's value")
	}
}

func TestPodForRefuses(t *testing.T) {
	tests := []struct{ name, def, want string }{
		{"healthy dependency", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","dependsOn":[{"containerName":"b","condition":"HEALTHY"}]},{"name":"b","image":"i","essential":false,"healthCheck":{"command":["CMD","true"]}}]}`, "HEALTHY has no Kubernetes form"},
		{"essential run to completion", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","dependsOn":[{"containerName":"b","condition":"SUCCESS"}]},{"name":"b","image":"i"}]}`, `mark b "essential": false`},
		{"user name", `{"family":"f","containerDefinitions":[{"name":"a","image":"i","user":"nobody"}]}`, "numeric user id"},
		{"container name", `{"family":"f","containerDefinitions":[{"name":"App_1","image":"i"}]}`, "cannot name a Kubernetes container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, _, err := taskdef.Parse([]byte(tt.def))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = podFor(task.Spec{App: "a", Env: "e", Service: "s", Family: "f", Revision: 1, Def: def}, "x", "", "", false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("podFor error = %v; want %q", err, tt.want)
			}
		})
	}
}

// A pod's containers come from its annotation, or, where that was lost,
// from its spec: a task of no containers would count as running forever.
func TestContainersOf(t *testing.T) {
	def := parseDef(t, `{"family":"web","containerDefinitions":[{"name":"web","image":"i","portMappings":[{"containerPort":8080}]},{"name":"side","image":"i","essential":false}]}`)
	pod, _, err := podFor(task.Spec{App: "shop", Env: "prod", Service: "web", Family: "web", Revision: 1, Def: def}, "abc", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	got := containersOf(pod)
	if len(got) != 2 || got[0].Name != "web" || !got[0].Essential || got[0].Ports != "8080/tcp" || got[1].Essential || got[0].LogStream == "" {
		t.Fatalf("from the annotation: %+v", got)
	}
	for _, ann := range []string{"", "{not json", "[]"} {
		pod.Annotations[annContainers] = ann
		got = containersOf(pod)
		if len(got) != 2 || got[0].Ports != "8080/tcp" || !got[0].Essential || !got[1].Essential || got[0].LogGroup != "/slipway/shop/prod/web" {
			t.Fatalf("annotation %q: %+v", ann, got)
		}
	}
}
