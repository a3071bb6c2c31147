package jail

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
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

func TestSetEgressAndUsage(t *testing.T) {
	sb, rec, _ := created(t, true)
	if err := sb.SetEgress(t.Context(), runtime.Egress{Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("203.0.113.0/24")}}); err != nil {
		t.Fatal(err)
	}
	checkLines(t, rec, []string{"pfctl -a sbx/abc -f -"})
	if in := rec.Calls()[0].Stdin; !strings.Contains(in, "table <allow> const { 198.51.100.7/32, 203.0.113.0/24 }") {
		t.Errorf("rules:\n%s", in)
	}
	rec.Reset()
	rec.On("rctl -u", executor.Result{Stdout: "cputime=3\nmemoryuse=1048576\nmaxproc=4\nopenfiles=17\npcpu=12\n"})
	u, err := sb.Usage(t.Context())
	want := runtime.Usage{MemoryBytes: 1048576, Processes: 4, OpenFiles: 17, CPUPercent: 12,
		MemoryLimitBytes: 512 << 20, MaxProcesses: 512, MaxOpenFiles: 8192}
	if err != nil || u != want {
		t.Fatalf("Usage = %+v, %v; want %+v", u, err, want)
	}
	checkLines(t, rec, []string{"rctl -u jail:sbx-abc"})
	// Figures rctl does not report are unknown (-1).
	rec.On("rctl -u", executor.Result{Stdout: "maxproc=0\n"})
	if u, err := sb.Usage(t.Context()); err != nil || u.MemoryBytes != -1 || u.OpenFiles != -1 || u.CPUPercent != -1 || u.Processes != 0 {
		t.Errorf("partial Usage = %+v, %v", u, err)
	}
	rec.On("rctl -u", executor.Result{Stdout: "memoryuse=lots\n"})
	if _, err := sb.Usage(t.Context()); err == nil {
		t.Error("unparsable rctl output accepted")
	}
	rec.On("rctl -u", failedResult)
	if _, err := sb.Usage(t.Context()); err == nil {
		t.Error("failed rctl accepted")
	}
}

func TestFileOwner(t *testing.T) {
	sb, _, data := created(t, true)
	etc := filepath.Join(data, "sandboxes", "abc", "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	// The jail's /etc/passwd is a link to /etc/users (an absolute link: inside the jail).
	if err := os.WriteFile(filepath.Join(etc, "users"), []byte("# users\nroot:*:0:0::0:0:Charlie &:/root:/bin/sh\nuser:*:1000:1000::0:0:User:/home/user:/bin/sh\nwww:*:80:80::0:0:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\nbad:*:x:1::0:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/users", filepath.Join(etc, "passwd")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user     string
		uid, gid int
		ok       bool
	}{
		{"", 1000, 1000, true},
		{"user", 1000, 1000, true},
		{"root", 0, 0, true},
		{"www", 80, 80, true},
		{"bad", 0, 0, false},
		{"nobody", 0, 0, false},
	}
	for _, tt := range tests {
		uid, gid, ok := sb.FileOwner(tt.user)
		if uid != tt.uid || gid != tt.gid || ok != tt.ok {
			t.Errorf("FileOwner(%q) = %d, %d, %v; want %d, %d, %v", tt.user, uid, gid, ok, tt.uid, tt.gid, tt.ok)
		}
	}
	sb.rt.cfg.UID = -1 // processes run as the jail's root
	if uid, gid, ok := sb.FileOwner(""); uid != 0 || gid != 0 || !ok {
		t.Errorf("default user with UID < 0: %d, %d, %v", uid, gid, ok)
	}
	if err := os.Remove(filepath.Join(etc, "users")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := sb.FileOwner("www"); ok {
		t.Error("user found without a passwd file")
	}
}

func TestDestroyFailureRetries(t *testing.T) {
	sb, rec, data := created(t, true)
	rec.Once("jail -r", failedResult)
	if err := sb.Destroy(t.Context()); err == nil || !strings.Contains(err.Error(), "remove jail") {
		t.Fatalf("Destroy: %v, want remove jail error", err)
	}
	checkLines(t, rec, expand(data, destroyZFS...))
	rec.Reset()
	// Already removed objects ("not found") are not errors on the retry.
	rec.On("jail -r", executor.Result{Err: &executor.ExitError{Code: 1, Stderr: `jail: "sbx-abc" not found`}})
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkLines(t, rec, expand(data, destroyZFS...))
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

// A create's egress policy is what the anchor gets; without one, the configured allow list.
func TestCreateEgress(t *testing.T) {
	rec := (&executor.Recorder{}).On("jail -i -c", jailStarted)
	r, _ := newTestRuntime(t, rec, true)
	spec := testSpec
	spec.Egress = &runtime.Egress{AllowAll: true, Deny: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}
	if _, err := r.Create(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	var rules string
	for _, c := range rec.Calls() {
		if strings.HasPrefix(strings.Join(c.Argv, " "), "pfctl -a sbx/abc -f -") {
			rules = c.Stdin
		}
	}
	if !strings.Contains(rules, "block drop quick inet from 10.77.0.2 to <deny>") || !strings.Contains(rules, "pass out quick inet from 10.77.0.2 to any keep state") {
		t.Fatalf("anchor rules:\n%s", rules)
	}
	if !r.Capabilities().Egress {
		t.Fatal("the jail runtime does not advertise egress policies")
	}
}
