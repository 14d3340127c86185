package stack

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// watchRollout prints a line whenever a Deployment of the release changes
// rollout state, until the returned stop function is called. Helm does the
// actual waiting (and marks the release failed on timeout); this only tells
// the user what it is waiting for.
func (s *Stack) watchRollout(ctx context.Context, enabled bool) (stop func()) {
	if !enabled {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	fmt.Fprintf(s.progress, "waiting for the rollout in namespace %s...\n", s.namespace)
	go func() {
		defer wg.Done()
		last := map[string]string{}
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			deps, err := s.deployments(ctx)
			if err != nil {
				continue
			}
			sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
			for _, d := range deps {
				line := rolloutLine(d)
				if last[d.Name] != line {
					last[d.Name] = line
					fmt.Fprintln(s.progress, line)
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

func rolloutLine(d DeploymentStatus) string {
	state := "rolling out"
	if d.Ready >= d.Desired && d.Updated >= d.Desired {
		state = "ready"
	}
	return fmt.Sprintf("  deployment/%s: %d/%d ready, %d updated (%s)", d.Name, d.Ready, d.Desired, d.Updated, state)
}
