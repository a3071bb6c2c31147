package jail

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

const (
	sbxDS  = "tank/fb/sbx"
	tmplDS = "tank/fb/tmpl"
)

// newTestRuntime returns a runtime that runs its commands on rec, with ZFS or with template copies.
func newTestRuntime(t *testing.T, rec *executor.Recorder, zfs bool) (*Runtime, string) {
	t.Helper()
	data := t.TempDir()
	cfg := Config{DataDir: data, Exec: rec, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), EgressAllow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	if zfs {
		cfg.SandboxDataset, cfg.TemplateDataset = sbxDS, tmplDS
	} else {
		cfg.TemplateDir = filepath.Join(data, "templates")
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, data
}

var testSpec = runtime.Spec{ID: "abc", TemplateID: "python", MemoryMB: 512, CPUCount: 2}

// expand replaces {data} with the data directory in each line.
func expand(data string, lines ...string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.ReplaceAll(l, "{data}", data)
	}
	return out
}

func checkLines(t *testing.T, rec *executor.Recorder, want []string) {
	t.Helper()
	got := rec.Lines()
	if !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("first difference at %d:\n got %q\nwant %q", i, g, w)
				break
			}
		}
	}
}

var (
	cloneLine = "zfs clone -o mountpoint={data}/sandboxes/abc tank/fb/tmpl/python@base tank/fb/sbx/abc"
	copyLine  = "cp -a {data}/templates/python {data}/sandboxes/abc"
	jailLine  = "jail -i -c name=sbx-abc path={data}/sandboxes/abc host.hostname=abc persist mount.devfs " +
		"devfs_ruleset=4 enforce_statfs=2 securelevel=2 children.max=0 allow.raw_sockets=0 allow.mount=0 " +
		"allow.chflags=0 ip4.addr=lo1|10.77.0.2/32 ip6=disable"
	rctlLines = []string{
		"rctl -a jail:sbx-abc:memoryuse:sigkill=512m",
		"rctl -a jail:sbx-abc:maxproc:deny=512",
		"rctl -a jail:sbx-abc:openfiles:deny=8192",
		"rctl -a jail:sbx-abc:pcpu:deny=200",
	}
	pfLoadLine   = "pfctl -a sbx/abc -f -"
	pfFlushLine  = "pfctl -a sbx/abc -F all"
	rctlRmLine   = "rctl -r jail:sbx-abc"
	jailRmLine   = "jail -r sbx-abc"
	devfsLine    = "mount -p -t devfs"
	destroyLine  = "zfs destroy -r tank/fb/sbx/abc"
	rmTreeLines  = []string{"chflags -R 0 {data}/sandboxes/abc", "rm -rf {data}/sandboxes/abc"}
	createZFS    = slices.Concat([]string{cloneLine, jailLine}, rctlLines, []string{pfLoadLine})
	killLine     = "pkill -KILL -j 7"
	teardownZFS  = []string{jailRmLine, pfFlushLine, rctlRmLine, devfsLine, destroyLine}
	destroyZFS   = append([]string{killLine}, teardownZFS...)
	wantPFRules  = "# fleetbox sandbox abc: deny all egress except the allow list\npass quick inet from 10.77.0.2 to 10.77.0.2\ntable <allow> const { 192.0.2.0/24 }\npass out quick inet from 10.77.0.2 to <allow> keep state\nblock drop quick inet from 10.77.0.2 to any\n"
	jailStarted  = executor.Result{Stdout: "7\n"}
	failedResult = executor.Result{Err: &executor.ExitError{Code: 1, Stderr: "boom"}}
)

func TestCreateAndDestroyZFS(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, data := newTestRuntime(t, rec, true)
	sb, err := r.Create(t.Context(), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, createZFS...))
	if c := rec.Calls()[len(createZFS)-1]; c.Stdin != wantPFRules {
		t.Errorf("pf rules:\n%s\nwant:\n%s", c.Stdin, wantPFRules)
	}
	js := sb.(*Sandbox)
	if js.JID() != 7 || js.Addr() != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("jid %d addr %s", js.JID(), js.Addr())
	}
	rec.Reset()
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	checkLines(t, rec, expand(data, destroyZFS...))
	if _, err := sb.Command(t.Context(), []string{"true"}, "", nil); !errors.Is(err, runtime.ErrDestroyed) {
		t.Errorf("Command after Destroy: %v", err)
	}
}

func TestCreateAndDestroyCopy(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, data := newTestRuntime(t, rec, false)
	// The recorder copies nothing: make the root as cp would.
	rec.On("cp -a", executor.Result{})
	sb, err := r.Create(t.Context(), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, slices.Concat([]string{copyLine, jailLine}, rctlLines, []string{pfLoadLine})...))
	if err := os.MkdirAll(filepath.Join(data, "sandboxes", "abc"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, slices.Concat([]string{killLine, jailRmLine, pfFlushLine, rctlRmLine, devfsLine}, rmTreeLines)...))
}

// hookExec runs a hook before recording each command (to make the files a real command would make).
type hookExec struct {
	*executor.Recorder
	hook func(argv []string)
}

func (h hookExec) Run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	h.hook(argv)
	return h.Recorder.Run(ctx, argv, stdin)
}

func devfsMounted(data string) executor.Result {
	return executor.Result{Stdout: "devfs " + data + "/sandboxes/abc/dev devfs rw 0 0\n"}
}

func TestCreateFailures(t *testing.T) {
	tests := []struct {
		name   string
		zfs    bool
		script func(r *executor.Recorder, data string)
		want   []string
	}{
		{
			name:   "clone fails: nothing to undo",
			zfs:    true,
			script: func(r *executor.Recorder, _ string) { r.On("zfs clone", failedResult) },
			want:   []string{cloneLine},
		},
		{
			name:   "copy fails: partial copy removed",
			script: func(r *executor.Recorder, _ string) { r.On("cp -a", failedResult) },
			want:   slices.Concat([]string{copyLine, devfsLine}, rmTreeLines),
		},
		{
			name:   "jail start fails: clone destroyed",
			zfs:    true,
			script: func(r *executor.Recorder, _ string) { r.On("jail -i -c", failedResult) },
			want:   []string{cloneLine, jailLine, devfsLine, destroyLine},
		},
		{
			name:   "jail start fails without ZFS: copy removed",
			script: func(r *executor.Recorder, _ string) { r.On("jail -i -c", failedResult) },
			want:   slices.Concat([]string{copyLine, jailLine, devfsLine}, rmTreeLines),
		},
		{
			name:   "jail prints no jid: jail removed, clone destroyed",
			zfs:    true,
			script: func(r *executor.Recorder, _ string) { r.On("jail -i -c", executor.Result{Stdout: "garbage"}) },
			want:   []string{cloneLine, jailLine, jailRmLine, devfsLine, destroyLine},
		},
		{
			name: "rctl fails: rules removed, jail stopped, clone destroyed",
			zfs:  true,
			script: func(r *executor.Recorder, _ string) {
				r.On("jail -i -c", jailStarted).On("rctl -a jail:sbx-abc:openfiles:deny=8192", failedResult)
			},
			want: slices.Concat([]string{cloneLine, jailLine}, rctlLines[:3], []string{jailRmLine, rctlRmLine, devfsLine, destroyLine}),
		},
		{
			name: "pf fails: everything undone in reverse",
			zfs:  true,
			script: func(r *executor.Recorder, _ string) {
				r.On("jail -i -c", jailStarted).On("pfctl -a sbx/abc -f", failedResult)
			},
			want: slices.Concat(createZFS, teardownZFS),
		},
		{
			name: "jail start fails with devfs left mounted: unmounted before destroy",
			zfs:  true,
			script: func(r *executor.Recorder, data string) {
				r.On("jail -i -c", failedResult).On("mount -p", devfsMounted(data))
			},
			want: []string{cloneLine, jailLine, devfsLine, "umount -f {data}/sandboxes/abc/dev", destroyLine},
		},
		{
			name: "unmount fails: root kept",
			zfs:  true,
			script: func(r *executor.Recorder, data string) {
				r.On("jail -i -c", failedResult).On("mount -p", devfsMounted(data)).On("umount", failedResult)
			},
			want: []string{cloneLine, jailLine, devfsLine, "umount -f {data}/sandboxes/abc/dev"},
		},
		{
			name: "undo steps fail: later steps still run",
			zfs:  true,
			script: func(r *executor.Recorder, _ string) {
				r.On("jail -i -c", jailStarted).On("pfctl", failedResult).On("rctl -r", failedResult).On("jail -r", failedResult)
			},
			want: slices.Concat(createZFS, teardownZFS),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &executor.Recorder{}
			r, data := newTestRuntime(t, rec, tt.zfs)
			root := filepath.Join(data, "sandboxes", "abc")
			r.exec = hookExec{rec, func(argv []string) {
				if argv[0] == "cp" {
					_ = os.MkdirAll(root, 0o755) // a copy that fails part way leaves a partial root
				}
			}}
			tt.script(rec, data)
			if _, err := r.Create(t.Context(), testSpec); err == nil {
				t.Fatal("Create succeeded")
			}
			checkLines(t, rec, expand(data, tt.want...))
			if a, err := r.allocAddr("next"); err != nil || a != netip.MustParseAddr("10.77.0.2") {
				t.Errorf("address not released: next got %s, %v", a, err)
			}
		})
	}
}
