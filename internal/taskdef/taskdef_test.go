package taskdef

import (
	"encoding/json"
	"strings"
	"testing"
)

const seed = `{
  "family": "hello",
  "executionRoleArn": "arn:aws:iam::123:role/ecsTaskExecutionRole",
  "requiresCompatibilities": ["FARGATE"],
  "networkMode": "awsvpc",
  "cpu": "256", "memory": "512",
  "containerDefinitions": [{
    "name": "web", "image": "<IMAGE1_NAME>", "essential": true,
    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
    "environment": [{"name": "MODE", "value": "prod"}],
    "healthCheck": {"command": ["CMD-SHELL", "wget -q -O- localhost:8080/health"], "interval": 5, "timeout": 2, "retries": 3},
    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/hello"}}
  }, {
    "name": "sidecar", "image": "busybox", "essential": false,
    "dependsOn": [{"containerName": "web", "condition": "HEALTHY"}]
  }]
}`

func TestParseSeedFile(t *testing.T) {
	td, ignored, err := Parse([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	want := "containerDefinitions[0].logConfiguration,executionRoleArn,networkMode,requiresCompatibilities"
	if strings.Join(ignored, ",") != want {
		t.Fatalf("ignored %v", ignored)
	}
	if td.ContainerDefinitions[1].IsEssential() || !td.ContainerDefinitions[0].IsEssential() {
		t.Fatal("essential flags")
	}
	// Rendering keeps the ignored fields so the file round-trips.
	filled := FillPlaceholders([]byte(seed), "127.0.0.1:7070/hello@sha256:abc")
	td, _, err = Parse(filled)
	if err != nil || td.ContainerDefinitions[0].Image != "127.0.0.1:7070/hello@sha256:abc" {
		t.Fatalf("placeholder: %v %v", err, td.ContainerDefinitions[0].Image)
	}
	if err := Render(td, "sidecar", "busybox:2"); err != nil {
		t.Fatal(err)
	}
	if err := Render(td, "nope", "x"); err == nil || !strings.Contains(err.Error(), "web, sidecar") {
		t.Fatalf("render unknown container: %v", err)
	}
	out, _ := json.Marshal(td)
	if !strings.Contains(string(out), `"executionRoleArn"`) || !strings.Contains(string(out), `"awslogs-group"`) || !strings.Contains(string(out), `"busybox:2"`) {
		t.Fatalf("rendered: %s", out)
	}
}

func TestParseErrorsNamePath(t *testing.T) {
	mutate := func(from, to string) string { return strings.Replace(seed, from, to, 1) }
	cases := []struct{ name, json, want string }{
		{"not json", "{", "$: not a JSON object"},
		{"unknown top field", mutate(`"family"`, `"famly": "x", "family"`), "famly: unknown field"},
		{"unknown container field", mutate(`"essential": true`, `"esential": true`), "containerDefinitions[0].esential: unknown container field"},
		{"bad family", mutate(`"family": "hello"`, `"family": "he llo"`), "family: \"he llo\""},
		{"wrong type", mutate(`"containerPort": 8080`, `"containerPort": "8080"`), "containerDefinitions[0].portMappings[0].containerPort: must be a JSON integer"},
		{"wrong type in the second container", mutate(`"condition": "HEALTHY"`, `"condition": 7`), "containerDefinitions[1].dependsOn[0].condition: must be a JSON string, not number"},
		{"object for an array", mutate(`"portMappings": [`, `"portMappings": {"x": 1}, "y": [`), "containerDefinitions[0].portMappings: must be a JSON"},
		{"top-level wrong type", mutate(`"family": "hello"`, `"family": ["hello"]`), "family: must be a JSON string, not array"},
		{"after nested objects", mutate(`"essential": true`, `"essential": "yes"`), "containerDefinitions[0].essential: must be a JSON boolean"},
		{"after a whole container", mutate(`"essential": false`, `"essential": "no"`), "containerDefinitions[1].essential: must be a JSON boolean"},
		{"second array element", mutate(`{"name": "MODE", "value": "prod"}`, `{"name": "MODE", "value": "prod"}, {"name": "N", "value": 2}`), "containerDefinitions[0].environment[1].value: must be a JSON string"},
		{"port twice", mutate(`"essential": false,`, `"essential": false, "portMappings": [{"containerPort": 8080}],`), "containerDefinitions[1].portMappings[0].containerPort: 8080/tcp is also the port of containerDefinitions[0].portMappings[0]"},
		{"port range", mutate(`"containerPort": 8080`, `"containerPort": 70000`), "containerDefinitions[0].portMappings[0].containerPort: must be 1 to 65535"},
		{"health command", mutate(`["CMD-SHELL", "wget`, `["SHELL", "wget`), "containerDefinitions[0].healthCheck.command"},
		{"health interval", mutate(`"interval": 5`, `"interval": 1`), "containerDefinitions[0].healthCheck.interval: must be 5 to 300"},
		{"dependsOn unknown", mutate(`"containerName": "web"`, `"containerName": "db"`), "containerDefinitions[1].dependsOn[0].containerName"},
		{"dependsOn condition", mutate(`"condition": "HEALTHY"`, `"condition": "READY"`), "containerDefinitions[1].dependsOn[0].condition"},
		{"no essential", mutate(`"essential": true`, `"essential": false`), "containerDefinitions: at least one container must be essential"},
		{"duplicate name", mutate(`"name": "sidecar"`, `"name": "web"`), "containerDefinitions[1].name"},
		{"reservation above limit", mutate(`"essential": true,`, `"essential": true, "memory": 64, "memoryReservation": 128,`), "memoryReservation: 128 MiB is above"},
		{"no image", mutate(`"image": "busybox"`, `"image": ""`), "containerDefinitions[1].image: an image is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Parse([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestAdjustments(t *testing.T) {
	for _, c := range []struct {
		mappings string
		want     []string
	}{
		{`[{"containerPort": 8080}]`, nil},
		{`[{"containerPort": 8080, "hostPort": 8080}]`, []string{"portMappings[0]: hostPort 8080 is not published on the host"}},
		{`[{"containerPort": 8080, "hostPort": 9000}]`, []string{"portMappings[0]: hostPort 9000 is published on 127.0.0.1 only"}},
	} {
		td, _, err := Parse([]byte(`{"family": "f", "containerDefinitions": [{"name": "web", "image": "x", "memory": 64, "portMappings": ` + c.mappings + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		got := td.Adjustments()
		if len(got) != len(c.want) {
			t.Fatalf("%s: %v, want %v", c.mappings, got, c.want)
		}
		for i := range got {
			if !strings.Contains(got[i], c.want[i]) {
				t.Errorf("%s: %q, want %q", c.mappings, got[i], c.want[i])
			}
		}
	}
}
