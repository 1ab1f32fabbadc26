package taskdef

import (
	"os"
	"testing"
)

// FuzzParse: any bytes as taskdef.json give a task definition or an error
// that says something, never a panic; placeholders fill without one too.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/hello/taskdef.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"family":"f","containerDefinitions":[{"name":"a","image":"<IMAGE1_NAME>","dependsOn":[{"containerName":"b","condition":"START"}]}]}`))
	f.Add([]byte(`{"family":"f","containerDefinitions":[{"name":"a","image":"i","healthCheck":{"command":["CMD-SHELL","x"]},"portMappings":[{"containerPort":-1}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		td, _, err := Parse(data)
		if err == nil && td == nil {
			t.Fatal("no task definition and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
		FillPlaceholders(data, "127.0.0.1:7070/app@sha256:00")
	})
}
