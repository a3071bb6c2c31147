package handlers

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// A worker that dies with a kill in hand never answers it. While its heartbeat lasts the kill waits (and
// times out with 504); once the heartbeat is gone the sandbox died with its worker: 204, record lost.
func TestKillWhileTheOwnerDies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		heartbeat bool // the owner's heartbeat stays
		wantCode  int
	}{
		{"owner lost", false, http.StatusNoContent},
		{"owner silent", true, http.StatusGatewayTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			e.svc.KillTimeout = 3 * time.Second
			got := make(chan struct{}, 1)
			bus.Handle(e.worker.ops, schema.OpKill, func(ctx context.Context, id string, _ schema.KillRequest) (schema.Empty, error) {
				got <- struct{}{}
				<-ctx.Done() // a worker that stopped in the middle of it
				return schema.Empty{}, ctx.Err()
			})
			if _, err := e.bus.Workers.Put(t.Context(), fakeWorkerID, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			rec := e.running(true)
			if !tt.heartbeat {
				go func() {
					<-got
					_ = e.bus.Workers.Delete(context.Background(), fakeWorkerID)
				}()
			}
			resp := e.do(http.MethodDelete, "/sandboxes/"+rec.ID, "")
			if resp.code != tt.wantCode {
				t.Fatalf("DELETE: %d %s, want %d", resp.code, resp.body, tt.wantCode)
			}
			after := e.record(rec.ID)
			if tt.heartbeat {
				if after.State != schema.StateRunning || !strings.Contains(resp.errMessage(t), "kill") {
					t.Fatalf("record %s after a timed-out kill; message %q", after.State, resp.errMessage(t))
				}
				return
			}
			if after.State != schema.StateLost || !strings.Contains(after.Reason, "worker lost during the kill") {
				t.Fatalf("record %s (%s), want lost", after.State, after.Reason)
			}
		})
	}
}
