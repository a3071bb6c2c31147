package jail

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

func TestAdopt(t *testing.T) {
	t.Parallel()
	inventory := func(rec *executor.Recorder, data string) {
		rec.On("jls", executor.Result{Stdout: "jid name path ip4.addr\n" +
			"3 sbx-keep " + data + "/sandboxes/keep 10.77.0.2\n" +
			"4 sbx-moved /elsewhere 10.77.0.3\n" +
			"5 sbx-nodisk " + data + "/sandboxes/nodisk 10.77.0.4\n"}).
			On("zfs list", executor.Result{Stdout: "tank/fb/sbx\ntank/fb/sbx/keep\ntank/fb/sbx/moved\ntank/fb/sbx/orphan\n"}).
			On("rctl", executor.Result{Stdout: "jail:sbx-keep:maxproc:deny=512\n"}).
			On("pfctl -a sbx -s Anchors", executor.Result{Stdout: "  sbx/keep\n"})
	}
	rec := &executor.Recorder{}
	r, data := newTestRuntime(t, rec, true)
	inventory(rec, data)
	sb, err := r.Adopt(t.Context(), runtime.Spec{ID: "keep", EnvVars: map[string]string{"FOO": "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	s := sb.(*Sandbox)
	if s.JID() != 3 || s.Addr().String() != "10.77.0.2" || s.root != data+"/sandboxes/keep" {
		t.Fatalf("adopted jid %d addr %s root %s", s.JID(), s.Addr(), s.root)
	}
	if !slices.Contains(s.Env(), "FOO=bar") || !slices.Contains(s.Env(), "E2B_SANDBOX_ID=keep") {
		t.Fatalf("env %v", s.Env())
	}
	// Adopting only looks: the four inventory commands, nothing that changes the host.
	checkLines(t, rec, expand(data,
		"jls -h jid name path ip4.addr", "zfs list -H -o name -t filesystem -d 1 tank/fb/sbx", "rctl jail:", "pfctl -a sbx -s Anchors",
	))
	// Its address stays reserved; Cleanup keeping it leaves it alone, and Destroy tears it down.
	if a, _ := r.allocAddr("new"); a.String() != "10.77.0.3" {
		t.Errorf("new address %s, want 10.77.0.3", a)
	}
	rec.Reset()
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data,
		"pkill -KILL -j 3", "jail -r sbx-keep", "pfctl -a sbx/keep -F all", "rctl -r jail:sbx-keep", "mount -p -t devfs", "zfs destroy -r tank/fb/sbx/keep",
	))

	for _, tt := range []struct{ id, want string }{
		{"orphan", "no jail"},    // a dataset without a jail
		{"nodisk", "no root"},    // a jail without its dataset
		{"moved", "runs on"},     // a jail on another path
		{"absent", "no jail"},    // nothing at all
		{"Bad.Id", "invalid id"}, // not a sandbox id
	} {
		rec := &executor.Recorder{}
		r, data := newTestRuntime(t, rec, true)
		inventory(rec, data)
		_, err := r.Adopt(t.Context(), runtime.Spec{ID: tt.id})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Adopt(%s): %v, want %q", tt.id, err, tt.want)
		}
		if tt.want == "no jail" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Adopt(%s): %v does not match fs.ErrNotExist", tt.id, err)
		}
		for _, l := range rec.Lines() {
			if strings.Contains(l, "destroy") || strings.Contains(l, " -r ") || strings.Contains(l, "-F all") {
				t.Errorf("Adopt(%s) changed the host: %s", tt.id, l)
			}
		}
	}
}
