package lifecycle

import (
	"context"
	"errors"
	"net/http"
	"time"

	"fleetbox.dev/schema"
)

// Pause stops a running sandbox in place: its owner stops its processes, which keep their memory and
// files, and the sandbox ends after the owner's paused retention unless it is resumed. A sandbox that is
// already paused is a 409 (the SDKs then report "already paused"); one that is gone or being killed, a 404.
func (s *Service) Pause(ctx context.Context, id string) (schema.Record, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return schema.Record{}, err
	}
	switch rec.State {
	case schema.StatePaused:
		return schema.Record{}, alreadyPaused(id)
	case schema.StateKilling:
		return schema.Record{}, schema.Errorf(http.StatusNotFound, "sandbox %q not found: it is being killed", id)
	}
	return requestWithin[schema.Record](ctx, s, id, schema.OpPause, schema.PauseRequest{}, s.OpTimeout)
}

func alreadyPaused(id string) error {
	return schema.Errorf(http.StatusConflict, "sandbox %q is already paused", id)
}

// Resume continues a paused sandbox, which then ends d from now (E2B's deprecated POST …/resume). A
// running sandbox is a 409.
func (s *Service) Resume(ctx context.Context, id string, d time.Duration) (schema.Record, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return schema.Record{}, err
	}
	switch rec.State {
	case schema.StatePaused:
		return s.resume(ctx, id, d)
	case schema.StateKilling:
		return schema.Record{}, schema.Errorf(http.StatusNotFound, "sandbox %q not found: it is being killed", id)
	}
	return schema.Record{}, schema.Errorf(http.StatusConflict, "sandbox %q is already running", id)
}

func (s *Service) resume(ctx context.Context, id string, d time.Duration) (schema.Record, error) {
	req := schema.ResumeRequest{EndAt: s.Now().UTC().Add(d)}
	return requestWithin[schema.Record](ctx, s, id, schema.OpResume, req, s.OpTimeout)
}

// AutoResume resumes a paused sandbox created with autoResume, for its creation timeout, because traffic
// came for it. A sandbox that is running by then (someone else resumed it) is returned as it is; one
// without autoResume is a 409 (E2B's paused answer).
func (s *Service) AutoResume(ctx context.Context, rec schema.Record) (schema.Record, error) {
	if !rec.AutoResume {
		return rec, schema.Errorf(http.StatusConflict, "sandbox %q is paused", rec.ID)
	}
	d := time.Duration(rec.TimeoutSeconds) * time.Second
	if d <= 0 {
		d = schema.DefaultTimeout
	}
	resumed, err := s.resume(ctx, rec.ID, d)
	if errors.Is(err, schema.ErrConflict) {
		return s.Get(ctx, rec.ID)
	}
	return resumed, err
}

// ConnectParams is a validated connect request.
type ConnectParams struct {
	// Timeout is how long from now the sandbox should live at least.
	Timeout time.Duration
	// KeepMemory false asks to resume a paused sandbox from its disk state only (E2B's onResume
	// "reboot"), which sandboxes paused in place cannot do.
	KeepMemory bool
}

// Connect makes a sandbox usable for at least p.Timeout more. A paused sandbox is resumed and then ends
// p.Timeout from now (resumed is true: E2B answers 201); a running one keeps running and its end is only
// ever extended (200).
func (s *Service) Connect(ctx context.Context, id string, p ConnectParams) (rec schema.Record, resumed bool, err error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return schema.Record{}, false, err
	}
	if cur.State == schema.StatePaused {
		if !p.KeepMemory {
			return schema.Record{}, false, memoryRequired(id)
		}
		rec, err := s.resume(ctx, id, p.Timeout)
		if !errors.Is(err, schema.ErrConflict) {
			return rec, err == nil, err
		}
		// Someone else resumed it meanwhile: it runs, so extend it as for any running sandbox.
	}
	rec, err = s.SetTimeout(ctx, id, p.Timeout, true)
	if err != nil || rec.State != schema.StatePaused {
		return rec, false, err
	}
	// It was paused between our read and the owner's answer: resume it after all.
	if !p.KeepMemory {
		return schema.Record{}, false, memoryRequired(id)
	}
	rec, err = s.resume(ctx, id, p.Timeout)
	return rec, err == nil, err
}

func memoryRequired(id string) error {
	return schema.Errorf(http.StatusBadRequest,
		"sandbox %q is paused with its memory, and resuming from its disk state alone (memory: false) is not supported; connect without it", id)
}
