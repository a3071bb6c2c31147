package worker

import (
	"context"
	"errors"
	"slices"
	"strings"

	"fleetbox.dev/schema"
)

// opContextCreate starts a new code context and answers once its kernel is ready, so a failed start is
// reported to the caller rather than to its first execution.
func (w *Worker) opContextCreate(ctx context.Context, id string, req schema.ContextCreateRequest) (schema.CodeContext, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.CodeContext{}, err
	}
	if err := checkLanguage(req.Language); err != nil {
		return schema.CodeContext{}, err
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = schema.DefaultContextCwd
	}
	c, err := w.newContext(sb, schema.LanguagePython, cwd, true)
	if err != nil {
		return schema.CodeContext{}, err
	}
	sb.mu.Lock()
	if sb.killing {
		sb.mu.Unlock()
		c.close()
		return schema.CodeContext{}, sandboxNotFound(id)
	}
	sb.contexts[c.info.ID] = c
	sb.mu.Unlock()
	if _, err := c.get(ctx); err != nil {
		sb.removeContext(c.info.ID)
		c.close()
		return schema.CodeContext{}, err
	}
	return c.info, nil
}

// opContextList lists the sandbox's contexts, the default python context first.
func (w *Worker) opContextList(_ context.Context, id string, _ schema.Empty) ([]schema.CodeContext, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	out := make([]schema.CodeContext, 0, len(sb.contexts))
	for _, c := range sb.contexts {
		out = append(out, c.info)
	}
	def := sb.defaultCtx
	slices.SortFunc(out, func(a, b schema.CodeContext) int {
		switch {
		case a.ID == def:
			return -1
		case b.ID == def:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// opContextDelete kills a context's kernel and forgets the context.
func (w *Worker) opContextDelete(_ context.Context, id string, req schema.ContextRequest) (schema.Empty, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.Empty{}, err
	}
	c := sb.removeContext(req.ID)
	if c == nil {
		return schema.Empty{}, contextNotFound(req.ID)
	}
	c.close()
	return schema.Empty{}, nil
}

// opContextRestart gives a context a fresh interpreter (state gone, execution count back to 1) and
// answers once it is ready.
func (w *Worker) opContextRestart(ctx context.Context, id string, req schema.ContextRequest) (schema.Empty, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.Empty{}, err
	}
	if req.ID == "" {
		return schema.Empty{}, contextNotFound(req.ID)
	}
	c, err := sb.context(req.ID)
	if err != nil {
		return schema.Empty{}, err
	}
	if err := c.restart(ctx); err != nil {
		if errors.Is(err, errContextClosed) {
			return schema.Empty{}, contextNotFound(req.ID)
		}
		return schema.Empty{}, err
	}
	return schema.Empty{}, nil
}

// removeContext takes a context out of the sandbox and returns it, or nil if there is none by that id.
func (sb *sandbox) removeContext(id string) *codeContext {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	c := sb.contexts[id]
	delete(sb.contexts, id)
	return c
}
