package lifecycle

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"fleetbox.dev/schema"
)

// ListFilter selects and pages sandboxes.
type ListFilter struct {
	States   map[schema.State]bool // empty: running and paused
	Metadata map[string]string     // all pairs must match
	Limit    int                   // 0: no limit
	Next     string                // cursor from a previous page
}

// List returns live sandboxes, newest first, and the cursor of the next page ("" on the last page).
func (s *Service) List(ctx context.Context, f ListFilter) ([]schema.Record, string, error) {
	after, err := decodeCursor(f.Next)
	if err != nil {
		return nil, "", err
	}
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	all, err := s.Bus.ListRecords(rctx)
	if err != nil {
		return nil, "", err
	}
	states := f.States
	if len(states) == 0 {
		states = map[schema.State]bool{schema.StateRunning: true, schema.StatePaused: true}
	}
	var out []schema.Record
	for _, r := range all {
		if states[r.State] && matches(r.Metadata, f.Metadata) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return recordKey(out[i]).compare(recordKey(out[j])) < 0 })
	if after != nil {
		i := sort.Search(len(out), func(i int) bool { return after.compare(recordKey(out[i])) < 0 })
		out = out[i:]
	}
	next := ""
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
		next = encodeCursor(recordKey(out[len(out)-1]))
	}
	return out, next, nil
}

// cursorKey is where a page starts: items are ordered newest first, then by id, so pages are stable
// while items come and go.
type cursorKey struct {
	At time.Time
	ID string
}

func recordKey(r schema.Record) cursorKey { return cursorKey{At: r.StartedAt, ID: r.ID} }

// compare orders a before b (-1) when a is newer, or as old with a smaller id.
func (a cursorKey) compare(b cursorKey) int {
	if c := b.At.Compare(a.At); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func encodeCursor(k cursorKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.At.UnixNano(), 10) + "_" + k.ID))
}

func decodeCursor(s string) (*cursorKey, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	bad := schema.Errorf(http.StatusBadRequest, "invalid nextToken %q", s)
	if err != nil {
		return nil, bad
	}
	ts, id, ok := strings.Cut(string(b), "_")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || !schema.ValidSandboxID(id) {
		return nil, bad
	}
	return &cursorKey{At: time.Unix(0, n), ID: id}, nil
}

// ParseStates parses E2B's comma-joined state filter.
func ParseStates(v string) (map[schema.State]bool, error) {
	if v == "" {
		return nil, nil
	}
	out := map[schema.State]bool{}
	for _, s := range strings.Split(v, ",") {
		switch st := schema.State(strings.TrimSpace(s)); st {
		case schema.StateRunning, schema.StatePaused:
			out[st] = true
		default:
			return nil, schema.Errorf(http.StatusBadRequest, "invalid state %q: want running or paused", s)
		}
	}
	return out, nil
}

// ParseMetadataQuery decodes E2B's nested-encoded metadata filter exactly as E2B's API does: the value
// (already query-decoded once) is unescaped again as a whole, split on & and =, and each key and value is
// unescaped once more.
func ParseMetadataQuery(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	bad := func() error { return schema.Errorf(http.StatusBadRequest, "invalid metadata filter %q", v) }
	whole, err := queryUnescape(v)
	if err != nil {
		return nil, bad()
	}
	out := map[string]string{}
	for _, pair := range strings.Split(whole, "&") {
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, bad()
		}
		if k, err = queryUnescape(k); err != nil {
			return nil, bad()
		}
		if val, err = queryUnescape(val); err != nil {
			return nil, bad()
		}
		out[k] = val
	}
	return out, nil
}

func queryUnescape(s string) (string, error) { return url.QueryUnescape(s) }
