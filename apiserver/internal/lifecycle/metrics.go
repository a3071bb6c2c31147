package lifecycle

import (
	"context"
	"sync"
	"time"

	"fleetbox.dev/schema"
)

// metricsFanOut bounds how many owners LatestMetrics asks at once.
const metricsFanOut = 16

// Metrics has the owner of a live sandbox take a usage sample and returns the samples it keeps for the
// sandbox from start to end (whole seconds, as the SDKs send them: end includes its second; a zero bound
// is open), oldest first.
func (s *Service) Metrics(ctx context.Context, id string, start, end time.Time) ([]schema.Metric, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	ms, err := requestWithin[[]schema.Metric](ctx, s, id, schema.OpMetrics, schema.MetricsRequest{}, s.OpTimeout)
	if err != nil {
		return nil, err
	}
	out := ms[:0]
	for _, m := range ms {
		if (start.IsZero() || !m.Timestamp.Before(start)) && (end.IsZero() || m.Timestamp.Before(end.Add(time.Second))) {
			out = append(out, m)
		}
	}
	return out, nil
}

// LatestMetrics samples each of the live sandboxes ids (a few owners at a time) and returns the newest
// sample of each; sandboxes that are not live or whose owner does not answer are left out.
func (s *Service) LatestMetrics(ctx context.Context, ids []string) map[string]schema.Metric {
	out := map[string]schema.Metric{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, metricsFanOut)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ms, err := s.Metrics(ctx, id, time.Time{}, time.Time{})
			if err != nil || len(ms) == 0 {
				return
			}
			mu.Lock()
			out[id] = ms[len(ms)-1]
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
