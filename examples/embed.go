// Package examples embeds the example apps so `slipway demo` can push them
// from any copy of the binary.
package examples

import "embed"

// Hello is examples/hello: a Go service with its buildspec, Dockerfile,
// task definition, appspec and pipeline.
//
//go:embed hello
var Hello embed.FS
