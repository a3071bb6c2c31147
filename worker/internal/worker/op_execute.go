package worker

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
	"fleetbox.dev/worker/internal/kernel"
	"fleetbox.dev/worker/internal/logkey"
)

// opExecute accepts an execution and runs it in the background, writing its NDJSON lines to the byte
// stream the request names. The reply only says the execution was accepted (or why not); the output
// and its end travel on the stream.
func (w *Worker) opExecute(_ context.Context, id string, req schema.ExecuteRequest) (schema.Empty, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.Empty{}, err
	}
	if req.ContextID != "" && req.Language != "" {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "Only one of context_id or language can be provided")
	}
	if err := checkLanguage(req.Language); err != nil {
		return schema.Empty{}, err
	}
	if !schema.ValidToken(req.Stream) {
		return schema.Empty{}, schema.Errorf(http.StatusBadRequest, "invalid stream id %q", req.Stream)
	}
	c, err := sb.context(req.ContextID)
	if err != nil {
		return schema.Empty{}, err
	}
	// The writer listens for the reader's credit before the reply goes out, so a reader that cancels
	// right after the reply is heard.
	writer, err := bus.NewStreamWriter(w.bus.NC, id, req.Stream)
	if err != nil {
		return schema.Empty{}, err
	}
	ectx, cancel := context.WithCancel(sb.ctx)
	sb.mu.Lock()
	if sb.killing {
		sb.mu.Unlock()
		cancel()
		_ = writer.Close(nil)
		return schema.Empty{}, sandboxNotFound(id)
	}
	sb.executions[req.Stream] = cancel
	sb.mu.Unlock()
	go func() {
		defer func() {
			cancel()
			sb.mu.Lock()
			delete(sb.executions, req.Stream)
			sb.mu.Unlock()
		}()
		w.runExecution(ectx, sb, c, req, writer)
	}()
	return schema.Empty{}, nil
}

// runExecution streams one execution to writer and ends the stream. ctx is cancelled when the reader
// goes away, on OpInterrupt and when the sandbox is killed; the kernel then interrupts the code.
func (w *Worker) runExecution(ctx context.Context, sb *sandbox, c *codeContext, req schema.ExecuteRequest, writer *bus.StreamWriter) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-writer.Canceled():
			cancel()
		case <-ctx.Done():
		}
	}()
	emitted := false
	emit := func(line []byte) error {
		if err := sb.ctx.Err(); err != nil {
			// Killed: the kernel's own "KernelDied" lines would only precede the stream's error end.
			return err
		}
		emitted = true
		_, err := writer.Write(append(line, '\n'))
		return err
	}
	k, err := c.get(ctx)
	if err == nil {
		err = k.Execute(ctx, req.Code, req.EnvVars, emit)
		if err != nil && !emitted && errors.Is(err, kernel.ErrKernelDied) && ctx.Err() == nil {
			// The kernel died or was replaced between get and the send: run on its successor.
			if k, err = c.get(ctx); err == nil {
				err = k.Execute(ctx, req.Code, req.EnvVars, emit)
			}
		}
	}
	var end error
	switch {
	case err == nil:
	case sb.ctx.Err() != nil:
		end = schema.Errorf(http.StatusBadGateway, "sandbox %s was killed during the execution", sb.id)
	case errors.Is(err, errContextClosed):
		end = contextNotFound(c.info.ID)
	case ctx.Err() != nil:
		// The reader went away or the execution was interrupted: nobody needs an error.
	case !emitted:
		end = err
	}
	if err != nil && ctx.Err() == nil {
		sb.log.Warn("execution failed", logkey.ContextID, c.info.ID, logkey.Stream, req.Stream, logkey.Error, err)
	}
	if cerr := writer.Close(end); cerr != nil && !errors.Is(cerr, bus.ErrStreamCanceled) {
		sb.log.Debug("close execution stream", logkey.Stream, req.Stream, logkey.Error, cerr)
	}
}

// opInterrupt interrupts the execution writing to a stream, if it still runs.
func (w *Worker) opInterrupt(_ context.Context, id string, req schema.InterruptRequest) (schema.Empty, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return schema.Empty{}, err
	}
	sb.mu.Lock()
	cancel := sb.executions[req.Stream]
	sb.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return schema.Empty{}, nil
}

// checkLanguage accepts the languages this worker runs: python only, for now.
func checkLanguage(lang string) error {
	switch strings.ToLower(strings.TrimSpace(lang)) {
	case "", schema.LanguagePython:
		return nil
	}
	return schema.Errorf(http.StatusBadRequest, "Language %q is not supported: only %s is", lang, schema.LanguagePython)
}
