package slipwayfile

import (
	"os"
	"testing"
)

// FuzzParse: any bytes as slipway.yaml give a spec or an error that says
// something, never a panic.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/hello/slipway.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("stages:\n  - name: a\n    actions: [{name: b, type: build, inputs: [X]}]\n"))
	f.Add([]byte("on: {push: {branches: ['main'], tags: ['v*'], paths: ['src/**']}}\nmode: queued\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err == nil && spec == nil {
			t.Fatal("no spec and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}
