package build

import (
	"os"
	"testing"
)

// FuzzParse: any bytes as a buildspec give a spec or an error that says
// something, never a panic.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/hello/buildspec.yml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("version: 0.2\nphases:\n  build:\n    commands: [echo hi]\n    on-failure: CONTINUE\n    finally: [echo done]\n"))
	f.Add([]byte("version: 0.2\nartifacts:\n  files: ['**/*']\n  secondary-artifacts:\n    x: {files: [a], base-directory: b}\n"))
	f.Add([]byte("version: 0.2\nenv:\n  secrets-manager: {A: 'arn:aws:secretsmanager:r:1:secret:db:password'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(FileName, data)
		if err == nil && spec == nil {
			t.Fatal("no spec and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}
