package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	ctr "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// engineStartReference is the engine's own cost of a task: the seconds per
// container to create and start n containers of image straight through its
// API, par at a time (as the server starts tasks), then remove them. The
// scale benchmark divides its convergence time per task by it: on a machine
// where starting a process is dear, the engine alone sets the floor.
func engineStartReference(image string, n, par int) (float64, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var ids []string
	defer func() {
		for _, id := range ids {
			cli.ContainerRemove(context.Background(), id, ctr.RemoveOptions{Force: true})
		}
	}()
	sem := make(chan struct{}, par)
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := cli.ContainerCreate(ctx, &ctr.Config{Image: image, Env: []string{"PORT=8080"}, Labels: map[string]string{"slipway.bench": "1"}},
				&ctr.HostConfig{NetworkMode: "bridge"}, nil, nil, "")
			if err == nil {
				mu.Lock()
				ids = append(ids, c.ID)
				mu.Unlock()
				err = cli.ContainerStart(ctx, c.ID, ctr.StartOptions{})
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			return 0, fmt.Errorf("engine reference: %w", err)
		}
	}
	return time.Since(start).Seconds() / float64(n), nil
}
