package worker_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

func TestContexts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	ctx, nc := t.Context(), h.bus.NC
	op := func(name string) string { return schema.SubjectOp(id, name) }

	list, err := bus.Request[[]schema.CodeContext](ctx, nc, op(schema.OpContextList), schema.Empty{})
	if err != nil || len(list) != 1 || list[0].Language != "python" || list[0].Cwd != "/home/user" {
		t.Fatalf("initial list %v, %v", list, err)
	}
	def := list[0].ID

	h.run(t, id, "", "import os; os.mkdir('/'.join([os.environ['HOME'], 'proj']))")
	c, err := bus.Request[schema.CodeContext](ctx, nc, op(schema.OpContextCreate), schema.ContextCreateRequest{Cwd: "/home/user/proj"})
	if err != nil || c.ID == "" || c.ID == def || c.Language != "python" || c.Cwd != "/home/user/proj" {
		t.Fatalf("create %+v, %v", c, err)
	}
	list, _ = bus.Request[[]schema.CodeContext](ctx, nc, op(schema.OpContextList), schema.Empty{})
	if len(list) != 2 || list[0].ID != def {
		t.Fatalf("list %v", list)
	}

	// Contexts keep separate state; the new one runs in its cwd.
	h.run(t, id, c.ID, "y = 'mine'")
	if _, _, e := summary(h.run(t, id, "", "y")); e != "NameError" {
		t.Fatalf("state leaked into the default context: %q", e)
	}
	if _, out, _ := summary(h.run(t, id, c.ID, "import os; print(os.path.basename(os.getcwd()), y)")); out != "proj mine\n" {
		t.Fatalf("new context: %q", out)
	}

	// Restart: fresh interpreter, execution count back to 1.
	if _, err := bus.Request[schema.Empty](ctx, nc, op(schema.OpContextRestart), schema.ContextRequest{ID: c.ID}); err != nil {
		t.Fatal(err)
	}
	lines := h.run(t, id, c.ID, "'y' in globals()")
	if res, _, _ := summary(lines); res != "False" {
		t.Fatalf("state survived restart: %v", lines)
	}
	if n, _ := lines[0]["execution_count"].(float64); n != 1 {
		t.Fatalf("execution count after restart: %v", lines[0])
	}

	// Delete: gone from the list, 404 afterwards.
	if _, err := bus.Request[schema.Empty](ctx, nc, op(schema.OpContextDelete), schema.ContextRequest{ID: c.ID}); err != nil {
		t.Fatal(err)
	}
	list, _ = bus.Request[[]schema.CodeContext](ctx, nc, op(schema.OpContextList), schema.Empty{})
	if len(list) != 1 || list[0].ID != def {
		t.Fatalf("list after delete %v", list)
	}

	tests := []struct {
		name     string
		call     func() error
		wantCode int
		wantMsg  string
	}{
		{"execute deleted", func() error {
			_, err := execute(ctx, nc, id, schema.ExecuteRequest{Code: "1", ContextID: c.ID})
			return err
		}, http.StatusNotFound, "Context " + c.ID + " not found"},
		{"delete unknown", func() error {
			_, err := bus.Request[schema.Empty](ctx, nc, op(schema.OpContextDelete), schema.ContextRequest{ID: "nope"})
			return err
		}, http.StatusNotFound, "Context nope not found"},
		{"restart unknown", func() error {
			_, err := bus.Request[schema.Empty](ctx, nc, op(schema.OpContextRestart), schema.ContextRequest{ID: "nope"})
			return err
		}, http.StatusNotFound, "Context nope not found"},
		{"cwd missing", func() error {
			_, err := bus.Request[schema.CodeContext](ctx, nc, op(schema.OpContextCreate), schema.ContextCreateRequest{Cwd: "/home/user/missing"})
			return err
		}, http.StatusBadRequest, "/home/user/missing"},
		{"cwd escapes", func() error {
			_, err := bus.Request[schema.CodeContext](ctx, nc, op(schema.OpContextCreate), schema.ContextCreateRequest{Cwd: "/../.."})
			return err
		}, http.StatusBadRequest, "/../.."},
		{"language", func() error {
			_, err := bus.Request[schema.CodeContext](ctx, nc, op(schema.OpContextCreate), schema.ContextCreateRequest{Language: "java"})
			return err
		}, http.StatusBadRequest, `"java"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var se *schema.Error
			if !errors.As(err, &se) || se.Code != tt.wantCode || se.Message == "" || !strings.Contains(se.Message, tt.wantMsg) {
				t.Fatalf("got %v, want %d %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}

	// The default context survives all this.
	if res, _, _ := summary(h.run(t, id, def, "1 + 1")); res != "2" {
		t.Fatalf("default context: %q", res)
	}
}
