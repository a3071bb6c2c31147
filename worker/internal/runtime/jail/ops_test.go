package jail

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
	"fleetbox.dev/worker/internal/runtime/executor"
)

// created returns a sandbox made on a recorder whose recorded create commands are forgotten.
func created(t *testing.T, zfs bool) (*Sandbox, *executor.Recorder, string) {
	t.Helper()
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, data := newTestRuntime(t, rec, zfs)
	sb, err := r.Create(t.Context(), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	return sb.(*Sandbox), rec, data
}

func TestPauseResume(t *testing.T) {
	tests := []struct {
		name    string
		script  func(*executor.Recorder)
		want    []string
		wantErr bool
	}{
		{
			name:   "all stopped at once",
			script: func(r *executor.Recorder) { r.On("ps", executor.Result{Stdout: "T\nTs\nZ\n"}) },
			want:   []string{"pkill -STOP -j 7", "ps -o state= -J 7"},
		},
		{
			name: "a forked child is stopped in the second round",
			script: func(r *executor.Recorder) {
				r.Once("ps", executor.Result{Stdout: "T\nR\n"}).On("ps", executor.Result{Stdout: "T\nT\n"})
			},
			want: []string{"pkill -STOP -j 7", "ps -o state= -J 7", "pkill -STOP -j 7", "ps -o state= -J 7"},
		},
		{
			name: "empty jail: pkill and ps find nothing",
			script: func(r *executor.Recorder) {
				r.On("pkill", executor.Result{Err: &executor.ExitError{Code: 1}}).On("ps", executor.Result{Err: &executor.ExitError{Code: 1}})
			},
			want: []string{"pkill -STOP -j 7", "ps -o state= -J 7"},
		},
		{
			name: "pkill fails",
			script: func(r *executor.Recorder) {
				r.On("pkill", executor.Result{Err: &executor.ExitError{Code: 2, Stderr: "bad"}})
			},
			want:    []string{"pkill -STOP -j 7"},
			wantErr: true,
		},
		{
			name:    "never all stopped",
			script:  func(r *executor.Recorder) { r.On("ps", executor.Result{Stdout: "R\n"}) },
			want:    slices.Repeat([]string{"pkill -STOP -j 7", "ps -o state= -J 7"}, pauseRounds),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, rec, _ := created(t, true)
			tt.script(rec)
			err := sb.Pause(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Pause: %v, want error %v", err, tt.wantErr)
			}
			checkLines(t, rec, tt.want)
		})
	}
	sb, rec, _ := created(t, true)
	if err := sb.Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{"pkill -CONT -j 7"})
	rec.On("pkill", failedResult) // exit 1: nothing to continue
	if err := sb.Resume(t.Context()); err != nil {
		t.Fatalf("Resume of an empty jail: %v", err)
	}
}

func TestSnapshot(t *testing.T) {
	sb, rec, _ := created(t, true)
	name, err := sb.Snapshot(t.Context(), "s1")
	if err != nil || name != "tank/fb/sbx/abc@s1" {
		t.Fatalf("Snapshot = %q, %v", name, err)
	}
	checkLines(t, rec, []string{"zfs snapshot tank/fb/sbx/abc@s1"})
	if _, err := sb.Snapshot(t.Context(), "bad@name"); err == nil {
		t.Error("invalid snapshot name accepted")
	}
	rec.On("zfs snapshot", failedResult)
	if _, err := sb.Snapshot(t.Context(), "s2"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed snapshot: %v", err)
	}
	nozfs, rec2, _ := created(t, false)
	if _, err := nozfs.Snapshot(t.Context(), "s1"); err == nil {
		t.Error("snapshot without ZFS succeeded")
	}
	checkLines(t, rec2, nil)
}

func TestSetEgressAndUsage(t *testing.T) {
	sb, rec, _ := created(t, true)
	if err := sb.SetEgress(t.Context(), []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("203.0.113.0/24")}); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{"pfctl -a sbx/abc -f -"})
	if in := rec.Calls()[0].Stdin; !strings.Contains(in, "table <allow> const { 198.51.100.7/32, 203.0.113.0/24 }") {
		t.Errorf("rules:\n%s", in)
	}
	rec.Reset()
	rec.On("rctl -u", executor.Result{Stdout: "cputime=3\nmemoryuse=1048576\nmaxproc=4\n"})
	u, err := sb.Usage(t.Context())
	if err != nil || u["memoryuse"] != 1048576 || u["maxproc"] != 4 {
		t.Fatalf("Usage = %v, %v", u, err)
	}
	checkLines(t, rec, []string{"rctl -u jail:sbx-abc"})
}

func TestDestroyFailureRetries(t *testing.T) {
	sb, rec, data := created(t, true)
	rec.Once("jail -r", failedResult)
	if err := sb.Destroy(t.Context()); err == nil || !strings.Contains(err.Error(), "remove jail") {
		t.Fatalf("Destroy: %v, want remove jail error", err)
	}
	checkLines(t, rec, expand(data, teardownZFS...))
	rec.Reset()
	// Already removed objects ("not found") are not errors on the retry.
	rec.On("jail -r", executor.Result{Err: &executor.ExitError{Code: 1, Stderr: `jail: "sbx-abc" not found`}})
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkLines(t, rec, expand(data, teardownZFS...))
}

func TestCreateRefuses(t *testing.T) {
	rec := (&executor.Recorder{}).Fail("zfs clone", "cannot create 'tank/fb/sbx/abc': dataset already exists")
	r, _ := newTestRuntime(t, rec, true)
	if _, err := r.Create(t.Context(), testSpec); !errors.Is(err, runtime.ErrExists) {
		t.Errorf("existing dataset: %v, want ErrExists", err)
	}
	for _, spec := range []runtime.Spec{
		{ID: "../x", TemplateID: "python"}, {ID: "ABC", TemplateID: "python"}, {ID: "abc", TemplateID: "a/b"},
		{ID: "abc", TemplateID: "x@y"}, {ID: "abc", TemplateID: ".hidden"},
	} {
		rec.Reset()
		if _, err := r.Create(t.Context(), spec); err == nil {
			t.Errorf("Create(%+v) succeeded", spec)
		}
		checkLines(t, rec, nil)
	}
}

func TestDefaultTemplate(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, data := newTestRuntime(t, rec, true)
	if _, err := r.Create(t.Context(), runtime.Spec{ID: "abc"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Lines()[0]; got != "zfs clone -o mountpoint="+data+"/sandboxes/abc tank/fb/tmpl/base@base tank/fb/sbx/abc" {
		t.Errorf("clone: %s", got)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{DataDir: "relative", TemplateDir: "/t"},
		{DataDir: "/d"},
		{DataDir: "/d", SandboxDataset: "p/s"},
		{DataDir: "/d", TemplateDir: "/t", Prefix: "Bad-Prefix"},
		{DataDir: "/d", TemplateDir: "/t", Subnet: netip.MustParsePrefix("fd00::/64")},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestAddressesAreDistinctAndReused(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, _ := newTestRuntime(t, rec, true)
	var sbs []*Sandbox
	for _, id := range []string{"a1", "a2", "a3"} {
		sb, err := r.Create(t.Context(), runtime.Spec{ID: id, TemplateID: "python"})
		if err != nil {
			t.Fatal(err)
		}
		sbs = append(sbs, sb.(*Sandbox))
	}
	for i, want := range []string{"10.77.0.2", "10.77.0.3", "10.77.0.4"} {
		if sbs[i].Addr().String() != want {
			t.Errorf("sandbox %d addr %s, want %s", i, sbs[i].Addr(), want)
		}
	}
	if err := sbs[1].Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb, err := r.Create(t.Context(), runtime.Spec{ID: "a4", TemplateID: "python"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.(*Sandbox).Addr().String(); got != "10.77.0.3" {
		t.Errorf("reused addr %s, want 10.77.0.3", got)
	}
	small, err := New(Config{DataDir: t.TempDir(), TemplateDir: "/t", Exec: rec, Subnet: netip.MustParsePrefix("10.0.0.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.allocAddr("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := small.allocAddr("y"); err == nil {
		t.Error("/30 gave two jail addresses")
	}
}
