package worker_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/schema"
)

func TestFilesystem(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	runSh(t, nc, id, `mkdir -p a/b/c && printf hello > a/f.txt && echo x > a/b/g.txt && chmod 600 a/b/g.txt &&
		ln -s f.txt a/link && ln -s b a/dirlink && ln -s nowhere a/dangling`)

	t.Run("stat", func(t *testing.T) {
		tests := []struct {
			path string
			want schema.EntryInfo // zero ModifiedTime, Owner, Group are not compared
			code int
		}{
			{path: "a/f.txt", want: schema.EntryInfo{Name: "f.txt", Type: schema.FileTypeFile, Path: "/home/user/a/f.txt", Size: 5, Mode: 0o644, Permissions: "-rw-r--r--"}},
			{path: "/home/user/a/b/g.txt", want: schema.EntryInfo{Name: "g.txt", Type: schema.FileTypeFile, Path: "/home/user/a/b/g.txt", Size: 2, Mode: 0o600, Permissions: "-rw-------"}},
			{path: "/home/user/a/", want: schema.EntryInfo{Name: "a", Type: schema.FileTypeDirectory, Path: "/home/user/a", Mode: 0o755, Permissions: "drwxr-xr-x"}},
			{path: "a/link", want: schema.EntryInfo{Name: "link", Type: schema.FileTypeFile, Path: "/home/user/a/link", Mode: 0o644, Permissions: "Lrwxrwxrwx", SymlinkTarget: "/home/user/a/f.txt"}},
			{path: "a/dirlink", want: schema.EntryInfo{Name: "dirlink", Type: schema.FileTypeDirectory, Path: "/home/user/a/dirlink", Mode: 0o755, Permissions: "Lrwxrwxrwx", SymlinkTarget: "/home/user/a/b"}},
			{path: "a/dangling", want: schema.EntryInfo{Name: "dangling", Type: "FILE_TYPE_UNSPECIFIED", Path: "/home/user/a/dangling", Permissions: "Lrwxrwxrwx", SymlinkTarget: "/home/user/a/nowhere"}},
			{path: "a/nope", code: http.StatusNotFound},
			{path: "a/f.txt/x", code: http.StatusNotFound},
		}
		for _, tt := range tests {
			got, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: tt.path})
			if tt.code != 0 {
				wantCode(t, err, tt.code, "")
				continue
			}
			if err != nil {
				t.Fatalf("stat %s: %v", tt.path, err)
			}
			if got.Owner != "user" || got.Group != "user" || got.ModifiedTime.IsZero() {
				t.Errorf("stat %s: owner %q group %q time %v", tt.path, got.Owner, got.Group, got.ModifiedTime)
			}
			if tt.want.Type != schema.FileTypeDirectory && !strings.HasPrefix(tt.want.Permissions, "L") && got.Size != tt.want.Size {
				t.Errorf("stat %s: size %d, want %d", tt.path, got.Size, tt.want.Size)
			}
			got.Owner, got.Group, got.ModifiedTime, got.Size, tt.want.Size = "", "", tt.want.ModifiedTime, 0, 0
			if !equalEntry(got, tt.want) {
				t.Errorf("stat %s:\n got %+v\nwant %+v", tt.path, got, tt.want)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		tests := []struct {
			path  string
			depth int
			want  []string
			code  int
		}{
			{path: "a", depth: 1, want: []string{"/home/user/a/b", "/home/user/a/dangling", "/home/user/a/dirlink", "/home/user/a/f.txt", "/home/user/a/link"}},
			{path: "/home/user/a", depth: 0, want: []string{"/home/user/a/b", "/home/user/a/dangling", "/home/user/a/dirlink", "/home/user/a/f.txt", "/home/user/a/link"}},
			{path: "a", depth: 2, want: []string{"/home/user/a/b", "/home/user/a/b/c", "/home/user/a/b/g.txt", "/home/user/a/dangling", "/home/user/a/dirlink", "/home/user/a/f.txt", "/home/user/a/link"}},
			{path: "a/dirlink", depth: 1, want: []string{"/home/user/a/dirlink/c", "/home/user/a/dirlink/g.txt"}},
			{path: "a/f.txt", depth: 1, code: http.StatusBadRequest},
			{path: "a/nope", depth: 1, code: http.StatusNotFound},
			{path: "a", depth: -1, code: http.StatusBadRequest},
		}
		for _, tt := range tests {
			got, err := op[[]schema.EntryInfo](t, nc, id, schema.OpFsListDir, schema.FsListRequest{Path: tt.path, Depth: tt.depth})
			if tt.code != 0 {
				wantCode(t, err, tt.code, "")
				continue
			}
			if err != nil {
				t.Fatalf("list %s: %v", tt.path, err)
			}
			var paths []string
			for _, e := range got {
				paths = append(paths, e.Path)
				if e.Name != e.Path[strings.LastIndexByte(e.Path, '/')+1:] {
					t.Errorf("entry name %q for %q", e.Name, e.Path)
				}
			}
			if !slices.Equal(paths, tt.want) {
				t.Errorf("list %s depth %d:\n got %q\nwant %q", tt.path, tt.depth, paths, tt.want)
			}
		}
	})

	t.Run("mkdir", func(t *testing.T) {
		e, err := op[schema.EntryInfo](t, nc, id, schema.OpFsMakeDir, schema.FsRequest{Path: "m/n/o"})
		if err != nil || e.Type != schema.FileTypeDirectory || e.Path != "/home/user/m/n/o" || e.Name != "o" {
			t.Fatalf("mkdir: %+v %v", e, err)
		}
		for _, tt := range []struct {
			path string
			code int
		}{{"m/n/o", http.StatusConflict}, {"m", http.StatusConflict}, {"a/f.txt", http.StatusBadRequest}, {"a/f.txt/sub", http.StatusBadRequest}} {
			_, err := op[schema.EntryInfo](t, nc, id, schema.OpFsMakeDir, schema.FsRequest{Path: tt.path})
			wantCode(t, err, tt.code, "")
		}
	})

	t.Run("move", func(t *testing.T) {
		runSh(t, nc, id, "printf one > mv1.txt && printf two > mv2.txt")
		e, err := op[schema.EntryInfo](t, nc, id, schema.OpFsMove, schema.FsMoveRequest{Source: "mv1.txt", Destination: "/home/user/moved/deep/x.txt"})
		if err != nil || e.Path != "/home/user/moved/deep/x.txt" || e.Type != schema.FileTypeFile || e.Size != 3 {
			t.Fatalf("move: %+v %v", e, err)
		}
		if _, err := op[schema.EntryInfo](t, nc, id, schema.OpFsMove, schema.FsMoveRequest{Source: "mv2.txt", Destination: "moved/deep/x.txt"}); err != nil {
			t.Fatalf("move over a file: %v", err)
		}
		if out := runSh(t, nc, id, "cat moved/deep/x.txt; ls mv1.txt mv2.txt 2>/dev/null").stdout; out != "two" {
			t.Fatalf("after moves: %q", out)
		}
		_, err = op[schema.EntryInfo](t, nc, id, schema.OpFsMove, schema.FsMoveRequest{Source: "mv1.txt", Destination: "x"})
		wantCode(t, err, http.StatusNotFound, "")
	})

	t.Run("remove", func(t *testing.T) {
		for _, p := range []string{"moved", "moved", "a/dirlink", "/home/user/never/was"} {
			if _, err := op[schema.Empty](t, nc, id, schema.OpFsRemove, schema.FsRequest{Path: p}); err != nil {
				t.Fatalf("remove %s: %v", p, err)
			}
		}
		_, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "moved"})
		wantCode(t, err, http.StatusNotFound, "")
		// Removing the link left its target alone.
		if _, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "a/b/g.txt"}); err != nil {
			t.Fatal(err)
		}
		_, err = op[schema.Empty](t, nc, id, schema.OpFsRemove, schema.FsRequest{Path: "/"})
		wantCode(t, err, http.StatusBadRequest, "")
	})

	t.Run("user", func(t *testing.T) {
		_, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "a", User: "bob"})
		wantCode(t, err, http.StatusUnauthorized, "invalid username: 'bob'")
		if _, err := op[schema.EntryInfo](t, nc, id, schema.OpFsMakeDir, schema.FsRequest{Path: "rootdir", User: "root"}); err != nil {
			t.Fatal(err)
		}
		if e, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "/root/rootdir"}); err != nil || e.Type != schema.FileTypeDirectory {
			t.Fatalf("root's relative path: %+v %v", e, err)
		}
	})

	t.Run("envs", func(t *testing.T) {
		env, err := op[map[string]string](t, nc, id, schema.OpEnvs, schema.Empty{})
		if err != nil || len(env) != 1 || env["GREETING"] != "hello" {
			t.Fatalf("envs %v %v", env, err)
		}
	})
}

// Paths never leave the sandbox: not by "..", not through a symlink.
func TestFilesystemEscapes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker(t)
	id := h.createRunning(t)
	nc := h.bus.NC
	runSh(t, nc, id, "ln -s /etc etclink && ln -s ../../../../../../../../etc/passwd pwlink")

	escapes := []struct {
		path  string
		write bool // also refused as the parent of a new file
	}{
		{"../../../../etc/passwd", true}, {"/../etc/passwd", true}, {"etclink/passwd", true}, {"etclink", false}, {"pwlink", false},
	}
	for _, tt := range escapes {
		t.Run(tt.path, func(t *testing.T) {
			_, err := readFile(t, nc, id, tt.path)
			wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
			_, err = op[[]schema.EntryInfo](t, nc, id, schema.OpFsListDir, schema.FsListRequest{Path: tt.path})
			wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
			_, err = writeFile(t, nc, id, tt.path, strings.NewReader("x"), nil)
			wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
			if tt.write {
				_, err = writeFile(t, nc, id, tt.path+"-new", strings.NewReader("x"), nil)
				wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
			}
		})
	}
	for _, req := range []struct {
		op  string
		req any
	}{
		{schema.OpFsStat, schema.FsRequest{Path: "etclink/passwd"}},
		{schema.OpFsMakeDir, schema.FsRequest{Path: "etclink/newdir"}},
		{schema.OpFsRemove, schema.FsRequest{Path: "etclink/hostname"}},
		{schema.OpFsMove, schema.FsMoveRequest{Source: "etclink/hostname", Destination: "stolen"}},
		{schema.OpFsMove, schema.FsMoveRequest{Source: "pwlink", Destination: "etclink/planted"}},
		{schema.OpFsWatch, schema.FsWatchRequest{Path: "etclink", Stream: schema.NewToken(8)}},
	} {
		_, err := op[schema.EntryInfo](t, nc, id, req.op, req.req)
		wantCode(t, err, http.StatusBadRequest, "leaves the sandbox")
	}
	// Inside the sandbox "/etc/passwd" is simply missing, not the host's.
	_, err := readFile(t, nc, id, "../../etc/passwd")
	wantCode(t, err, http.StatusNotFound, "path '/etc/passwd' does not exist")
	// The link itself is described, not followed.
	e, err := op[schema.EntryInfo](t, nc, id, schema.OpFsStat, schema.FsRequest{Path: "etclink"})
	if err != nil || e.Type != "FILE_TYPE_UNSPECIFIED" || e.Permissions != "Lrwxrwxrwx" || e.SymlinkTarget != "/etc" {
		t.Fatalf("stat of the link: %+v %v", e, err)
	}
}

func equalEntry(a, b schema.EntryInfo) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Path == b.Path && a.Size == b.Size && a.Mode == b.Mode &&
		a.Permissions == b.Permissions && a.Owner == b.Owner && a.Group == b.Group && a.SymlinkTarget == b.SymlinkTarget &&
		a.ModifiedTime.Equal(b.ModifiedTime) && len(a.Metadata) == len(b.Metadata)
}
