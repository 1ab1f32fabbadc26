// Command slipway is the Slipway server and its command-line client.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/slipway-dev/slipway/internal/cli"
)

func main() {
	if err := cli.NewRoot().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
