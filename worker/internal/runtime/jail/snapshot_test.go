package jail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

const (
	snapLine       = "zfs snapshot tank/fb/sbx/abc@s1"
	sendRecvLine   = "zfs send tank/fb/sbx/abc@s1 | zfs recv -u -o canmount=off tank/fb/snap/s1@s1"
	destroyTmpLine = "zfs destroy tank/fb/sbx/abc@s1"
	destroySnapDS  = "zfs destroy -r tank/fb/snap/s1"
	snapListLine   = "zfs list -H -o name -t filesystem -d 1 tank/fb/snap"
)

func TestSnapshotZFS(t *testing.T) {
	exists := executor.Result{Err: &executor.ExitError{Code: 1, Stderr: "cannot receive new filesystem stream: destination 'tank/fb/snap/s1' exists"}}
	tests := []struct {
		name    string
		script  func(*executor.Recorder)
		want    []string
		wantErr error // nil: success; errAny: any error
	}{
		{
			name: "snapshot, send into the store, drop the temporary snapshot",
			want: []string{snapLine, sendRecvLine, destroyTmpLine},
		},
		{
			name:    "zfs snapshot fails: nothing else runs",
			script:  func(r *executor.Recorder) { r.On("zfs snapshot", failedResult) },
			want:    []string{snapLine},
			wantErr: errAny,
		},
		{
			name:    "receive fails: the partial file system and the temporary snapshot are destroyed",
			script:  func(r *executor.Recorder) { r.On("zfs recv", failedResult) },
			want:    []string{snapLine, sendRecvLine, destroySnapDS, destroyTmpLine},
			wantErr: errAny,
		},
		{
			name:    "send fails: the same",
			script:  func(r *executor.Recorder) { r.On("zfs send", failedResult) },
			want:    []string{snapLine, sendRecvLine, destroySnapDS, destroyTmpLine},
			wantErr: errAny,
		},
		{
			name:    "the name is taken: the existing snapshot is left alone",
			script:  func(r *executor.Recorder) { r.On("zfs recv", exists) },
			want:    []string{snapLine, sendRecvLine, destroyTmpLine},
			wantErr: runtime.ErrExists,
		},
		{
			name:    "receive and cleanups fail: every failure is reported",
			script:  func(r *executor.Recorder) { r.On("zfs recv", failedResult).On("zfs destroy", failedResult) },
			want:    []string{snapLine, sendRecvLine, destroySnapDS, destroyTmpLine},
			wantErr: errAny,
		},
		{
			name:   "the temporary snapshot cannot be destroyed: the snapshot is made anyway",
			script: func(r *executor.Recorder) { r.On("zfs destroy tank/fb/sbx/abc@s1", failedResult) },
			want:   []string{snapLine, sendRecvLine, destroyTmpLine},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, rec, _ := created(t, true)
			if tt.script != nil {
				tt.script(rec)
			}
			err := sb.Snapshot(t.Context(), "s1")
			checkErr(t, err, tt.wantErr)
			checkLines(t, rec, tt.want)
		})
	}
	t.Run("refusals run nothing", func(t *testing.T) {
		sb, rec, _ := created(t, true)
		for _, bad := range []string{"", "S1", "a/b", "a@b", "../x"} {
			if err := sb.Snapshot(t.Context(), bad); err == nil {
				t.Errorf("Snapshot(%q) succeeded", bad)
			}
		}
		if err := sb.rt.reserveSnapshot("s1"); err != nil { // as if another sandbox were making s1
			t.Fatal(err)
		}
		if err := sb.Snapshot(t.Context(), "s1"); !errors.Is(err, runtime.ErrExists) {
			t.Errorf("Snapshot of a name being made: %v, want ErrExists", err)
		}
		sb.rt.releaseSnapshot("s1")
		if err := sb.Destroy(t.Context()); err != nil {
			t.Fatal(err)
		}
		rec.Reset()
		if err := sb.Snapshot(t.Context(), "s1"); !errors.Is(err, runtime.ErrDestroyed) {
			t.Errorf("Snapshot after Destroy: %v", err)
		}
		checkLines(t, rec, nil)
	})
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && err == nil:
		t.Fatal("no error")
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	case want == errAny && errors.Is(err, runtime.ErrExists):
		t.Fatalf("error %v must not be ErrExists", err)
	}
}

// copyRootLine is the copy of the test root made by makeRoot.
const copyRootLine = "cp -a {data}/sandboxes/abc/bin {data}/sandboxes/abc/etc {data}/sandboxes/abc/home {data}/snapshots/.tmp-s1"

// makeRoot gives the sandbox root of a recorder-made sandbox some top-level entries, dev among them.
func makeRoot(t *testing.T, data string) {
	t.Helper()
	for _, d := range []string{"bin", "dev", "etc", "home/user"} {
		if err := os.MkdirAll(filepath.Join(data, "sandboxes", "abc", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotCopy(t *testing.T) {
	tmpRm := []string{"chflags -R 0 {data}/snapshots/.tmp-s1", "rm -rf {data}/snapshots/.tmp-s1"}
	tests := []struct {
		name    string
		setup   func(t *testing.T, rec *executor.Recorder, data string)
		want    []string
		wantErr error
	}{
		{
			name: "copy of the root but its devfs, renamed when complete",
			want: []string{copyRootLine},
		},
		{
			name:    "copy fails: the partial copy is removed",
			setup:   func(_ *testing.T, rec *executor.Recorder, _ string) { rec.On("cp -a", failedResult) },
			want:    slices.Concat([]string{copyRootLine}, tmpRm),
			wantErr: errAny,
		},
		{
			name: "a partial copy left by a crash is removed first",
			setup: func(t *testing.T, _ *executor.Recorder, data string) {
				if err := os.MkdirAll(filepath.Join(data, "snapshots", ".tmp-s1", "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			// The recorder removes nothing: the test's hook does.
			want: slices.Concat(tmpRm, []string{copyRootLine}),
		},
		{
			name: "the name is taken: nothing runs",
			setup: func(t *testing.T, _ *executor.Recorder, data string) {
				if err := os.MkdirAll(filepath.Join(data, "snapshots", "s1"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: runtime.ErrExists,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, rec, data := created(t, false)
			makeRoot(t, data)
			sb.rt.exec = hookExec{rec, func(argv []string) {
				if argv[0] == "rm" { // what rm -rf would do
					_ = os.RemoveAll(argv[len(argv)-1])
				}
			}}
			if tt.setup != nil {
				tt.setup(t, rec, data)
			}
			err := sb.Snapshot(t.Context(), "s1")
			checkErr(t, err, tt.wantErr)
			checkLines(t, rec, expand(data, tt.want...))
			if _, err := os.Lstat(filepath.Join(data, "snapshots", ".tmp-s1")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("temporary copy left: %v", err)
			}
			if tt.wantErr != nil {
				return
			}
			fi, err := os.Stat(filepath.Join(data, "snapshots", "s1", "dev"))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o555 {
				t.Errorf("dev in the snapshot: %v, %v; want an empty directory 0555", fi, err)
			}
		})
	}
}

func TestCreateFromSnapshot(t *testing.T) {
	fromSnap := runtime.Spec{ID: "abc", TemplateID: "python", MemoryMB: 512, CPUCount: 2, Snapshot: "s1"}
	cloneSnapLine := "zfs clone -o mountpoint={data}/sandboxes/abc tank/fb/snap/s1@s1 tank/fb/sbx/abc"
	t.Run("zfs: a clone of the snapshot", func(t *testing.T) {
		rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
		r, data := newTestRuntime(t, rec, true)
		if _, err := r.Create(t.Context(), fromSnap); err != nil {
			t.Fatal(err)
		}
		checkLines(t, rec, expand(data, slices.Concat([]string{cloneSnapLine}, createZFS[1:])...))
	})
	for _, tt := range []struct {
		name    string
		stderr  string
		wantErr error
	}{
		{"unknown snapshot", "cannot open 'tank/fb/snap/s1@s1': dataset does not exist", fs.ErrNotExist},
		{"other clone failure", "out of space", errAny},
	} {
		t.Run("zfs: "+tt.name+" leaves nothing", func(t *testing.T) {
			rec := (&executor.Recorder{}).Fail("zfs clone", tt.stderr)
			r, data := newTestRuntime(t, rec, true)
			_, err := r.Create(t.Context(), fromSnap)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == errAny && errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%v must not match fs.ErrNotExist", err)
			}
			checkLines(t, rec, expand(data, cloneSnapLine))
		})
	}
	t.Run("copy: a copy of the snapshot", func(t *testing.T) {
		rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
		r, data := newTestRuntime(t, rec, false)
		if err := os.MkdirAll(filepath.Join(data, "snapshots", "s1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Create(t.Context(), fromSnap); err != nil {
			t.Fatal(err)
		}
		checkLines(t, rec, expand(data, slices.Concat([]string{"cp -a {data}/snapshots/s1 {data}/sandboxes/abc", jailLine}, rctlLines, []string{pfLoadLine})...))
	})
	t.Run("copy: an unknown snapshot runs nothing", func(t *testing.T) {
		rec := &executor.Recorder{}
		r, _ := newTestRuntime(t, rec, false)
		if _, err := r.Create(t.Context(), fromSnap); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Create: %v, want fs.ErrNotExist", err)
		}
		checkLines(t, rec, nil)
	})
	t.Run("an invalid name runs nothing", func(t *testing.T) {
		rec := &executor.Recorder{}
		r, _ := newTestRuntime(t, rec, true)
		for _, bad := range []string{"../x", "a@b", "S"} {
			if _, err := r.Create(t.Context(), runtime.Spec{ID: "abc", Snapshot: bad}); err == nil {
				t.Errorf("Create from %q succeeded", bad)
			}
		}
		checkLines(t, rec, nil)
	})
}

func TestDeleteSnapshotZFS(t *testing.T) {
	renameLine := "zfs rename tank/fb/snap/s1 tank/fb/snap/s1-deleted-1700000000000000000"
	tests := []struct {
		name    string
		script  func(*executor.Recorder)
		want    []string
		wantErr bool
	}{
		{name: "destroyed", want: []string{destroySnapDS}},
		{
			name: "already gone",
			script: func(r *executor.Recorder) {
				r.Fail("zfs destroy", "cannot open 'tank/fb/snap/s1': dataset does not exist")
			},
			want: []string{destroySnapDS},
		},
		{
			name: "still cloned: renamed out of sight",
			script: func(r *executor.Recorder) {
				r.Fail("zfs destroy", "cannot destroy 'tank/fb/snap/s1@s1': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\ntank/fb/sbx/abc")
			},
			want: []string{destroySnapDS, renameLine},
		},
		{
			name: "still cloned and the rename fails",
			script: func(r *executor.Recorder) {
				r.Fail("zfs destroy", "snapshot has dependent clones").On("zfs rename", failedResult)
			},
			want:    []string{destroySnapDS, renameLine},
			wantErr: true,
		},
		{
			name:    "destroy fails",
			script:  func(r *executor.Recorder) { r.On("zfs destroy", failedResult) },
			want:    []string{destroySnapDS},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &executor.Recorder{}
			r, _ := newTestRuntime(t, rec, true)
			r.now = func() time.Time { return time.Unix(0, 1700000000000000000) }
			if tt.script != nil {
				tt.script(rec)
			}
			if err := r.DeleteSnapshot(t.Context(), "s1"); (err != nil) != tt.wantErr {
				t.Fatalf("DeleteSnapshot: %v, want error %v", err, tt.wantErr)
			}
			checkLines(t, rec, tt.want)
		})
	}
	rec := &executor.Recorder{}
	r, _ := newTestRuntime(t, rec, true)
	if err := r.DeleteSnapshot(t.Context(), "../s1"); err == nil {
		t.Error("invalid name accepted")
	}
	checkLines(t, rec, nil)
}

func TestDeleteSnapshotCopy(t *testing.T) {
	rec := &executor.Recorder{}
	r, data := newTestRuntime(t, rec, false)
	r.now = func() time.Time { return time.Unix(0, 42) }
	if err := r.DeleteSnapshot(t.Context(), "s1"); err != nil {
		t.Fatalf("missing snapshot: %v", err)
	}
	checkLines(t, rec, nil)
	if err := os.MkdirAll(filepath.Join(data, "snapshots", "s1", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSnapshot(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, "chflags -R 0 {data}/snapshots/.del-s1-42", "rm -rf {data}/snapshots/.del-s1-42"))
	if names, err := r.Snapshots(t.Context()); err != nil || len(names) != 0 {
		t.Errorf("Snapshots after delete: %q, %v", names, err)
	}
	rec.Reset()
	if err := os.MkdirAll(filepath.Join(data, "snapshots", "s2"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec.On("rm -rf", failedResult)
	if err := r.DeleteSnapshot(t.Context(), "s2"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed rm: %v", err)
	}
}

func TestSnapshotsList(t *testing.T) {
	rec := (&executor.Recorder{}).On("zfs list", executor.Result{Stdout: "tank/fb/snap\ntank/fb/snap/s2\ntank/fb/snap/s1\ntank/fb/snap/s0-deleted-123\n"})
	r, _ := newTestRuntime(t, rec, true)
	if names, err := r.Snapshots(t.Context()); err != nil || !slices.Equal(names, []string{"s1", "s2"}) {
		t.Errorf("Snapshots = %q, %v", names, err)
	}
	checkLines(t, rec, []string{snapListLine})
	rec.Fail("zfs list", "cannot open 'tank/fb/snap': dataset does not exist")
	if names, err := r.Snapshots(t.Context()); err != nil || len(names) != 0 {
		t.Errorf("no snapshot dataset: %q, %v", names, err)
	}
	rec.On("zfs list", failedResult)
	if _, err := r.Snapshots(t.Context()); err == nil {
		t.Error("failed zfs list accepted")
	}

	cr, data := newTestRuntime(t, &executor.Recorder{}, false)
	if names, err := cr.Snapshots(t.Context()); err != nil || len(names) != 0 {
		t.Errorf("no snapshot directory: %q, %v", names, err)
	}
	for _, d := range []string{"b", "a", ".tmp-c", ".del-d-1"} {
		if err := os.MkdirAll(filepath.Join(data, "snapshots", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if names, err := cr.Snapshots(t.Context()); err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("Snapshots = %q, %v", names, err)
	}
}

// The Destroy of a sandbox made from a snapshot destroys the deleted snapshots that have no clones left.
func TestDestroyReapsDeletedSnapshots(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, data := newTestRuntime(t, rec, true)
	sb, err := r.Create(t.Context(), runtime.Spec{ID: "abc", TemplateID: "python", MemoryMB: 512, CPUCount: 2, Snapshot: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	rec.On("zfs list", executor.Result{Stdout: "tank/fb/snap\ntank/fb/snap/s1-deleted-5\ntank/fb/snap/s2\ntank/fb/snap/s3-deleted-6\n"}).
		Fail("zfs destroy -r tank/fb/snap/s3-deleted-6", "cannot destroy: snapshot has dependent clones")
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, expand(data, slices.Concat(destroyZFS, []string{
		snapListLine, "zfs destroy -r tank/fb/snap/s1-deleted-5", "zfs destroy -r tank/fb/snap/s3-deleted-6",
	})...))

	// A sandbox made from a template has no snapshot to look after.
	sb2, rec2, data2 := created(t, true)
	if err := sb2.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec2, expand(data2, destroyZFS...))
}

func TestSnapshotDatasetConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg     Config
		want    string
		wantErr bool
	}{
		{cfg: Config{SandboxDataset: "tank/fb/sbx", TemplateDataset: "tank/fb/tmpl"}, want: "tank/fb/snap"},
		{cfg: Config{SandboxDataset: "tank/fb/sbx", TemplateDataset: "t", SnapshotDataset: "tank/other"}, want: "tank/other"},
		{cfg: Config{SandboxDataset: "tank", TemplateDataset: "t"}, wantErr: true},
		{cfg: Config{SandboxDataset: "tank/fb/sbx", TemplateDataset: "t", SnapshotDataset: "tank/fb/sbx"}, wantErr: true},
		{cfg: Config{SandboxDataset: "tank/fb/sbx", TemplateDataset: "t", SnapshotDataset: "tank/fb/sbx/snap"}, wantErr: true},
		{cfg: Config{SandboxDataset: "tank/fb/sbx", TemplateDataset: "t", SnapshotDataset: "tank/fb/sbxsnap"}, want: "tank/fb/sbxsnap"},
	} {
		tt.cfg.DataDir = t.TempDir()
		r, err := New(tt.cfg)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%+v): %v, want error %v", tt.cfg, err, tt.wantErr)
			continue
		}
		if err == nil && r.cfg.SnapshotDataset != tt.want {
			t.Errorf("New(%+v): SnapshotDataset %q, want %q", tt.cfg, r.cfg.SnapshotDataset, tt.want)
		}
	}
}
