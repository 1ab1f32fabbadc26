package task

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"

	"github.com/slipway-dev/slipway/internal/pauseelf"
)

// LabelPause marks the image of the containers that hold a multi-container
// task's network namespace.
const LabelPause = "slipway.pause"

// pauseImage returns the namespace holder's image, importing it into the
// engine first if needed (an image of one file, made offline).
func (r *Runtime) pauseImage(ctx context.Context) (string, error) {
	bin, err := pauseelf.Build(runtime.GOARCH)
	if err != nil {
		return "", fmt.Errorf("multi-container tasks need a namespace holder: %w", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pause", Mode: 0o555, Size: int64(len(bin))}); err != nil {
		return "", err
	}
	tw.Write(bin)
	if err := tw.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	ref := "slipway-pause:" + hex.EncodeToString(sum[:6])
	if err := r.eng.ImportOnce(ctx, ref, layer.Bytes(), []string{"LABEL " + LabelPause + "=1", `ENTRYPOINT ["/pause"]`}, "the task network namespace holder's image"); err != nil {
		return "", err
	}
	return ref, nil
}
