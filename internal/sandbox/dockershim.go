package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/container"
)

// ShimDir holds the docker shim inside a sandbox with Docker access; put
// it first in PATH.
const ShimDir = Root + "/.bin"

// writeDockerShim puts a docker command in the workspace that runs the
// real one, adding the app's and the installation's labels to the images
// a buildspec's docker build makes, so they are known as the app's and go
// when it is deleted. It is bookkeeping, not a fence: a build with Docker
// access can do anything on the engine.
func writeDockerShim(workspace string, labels map[string]string) error {
	var flags []string
	for _, k := range []string{container.LabelApp, container.LabelInstallation} {
		if v := labels[k]; v != "" {
			flags = append(flags, "--label "+shellQuote(k+"="+v))
		}
	}
	l := strings.Join(flags, " ")
	script := fmt.Sprintf(`#!/bin/sh
# Written by Slipway: the images this build makes carry its app's labels.
PATH=${PATH#%[1]s:}
case "$1" in
build) shift; exec docker build %[2]s "$@" ;;
buildx|image) if [ "$2" = build ]; then sub=$1; shift 2; exec docker "$sub" build %[2]s "$@"; fi ;;
esac
exec docker "$@"
`, ShimDir, l)
	dir := filepath.Join(workspace, ".bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
