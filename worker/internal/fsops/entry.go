package fsops

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path"
	"strconv"
	"sync"
	"syscall"

	"fleetbox.dev/schema"
)

// Entry describes the file at t without following a final symlink, as envd does: a symlink reports
// the type and permission bits of what it points to, its own permissions string (Lrwxrwxrwx) and, in
// SymlinkTarget, the sandbox path it resolves to. A link that leaves the sandbox or dangles has type
// schema.FileTypeUnspecified (clients drop such entries from listings); one that leaves reports its raw target.
func (f *FS) Entry(t Target) (schema.EntryInfo, error) {
	fi, err := os.Lstat(t.Host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return schema.EntryInfo{}, notFound(t.Path)
		}
		return schema.EntryInfo{}, schema.Errorf(http.StatusInternalServerError, "stat '%s': %v", t.Path, unwrapPath(err))
	}
	return f.entry(t, fi), nil
}

// entry builds the EntryInfo of t from its Lstat result.
func (f *FS) entry(t Target, fi fs.FileInfo) schema.EntryInfo {
	name := path.Base(t.Path)
	e := schema.EntryInfo{
		Name:         name,
		Type:         schema.FileTypeUnspecified,
		Path:         t.Path,
		Size:         fi.Size(),
		Permissions:  fi.Mode().String(),
		ModifiedTime: fi.ModTime().UTC(),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Owner, e.Group = f.names(st.Uid, st.Gid)
	}
	mode := fi.Mode()
	if mode&fs.ModeSymlink != 0 {
		target, err := f.Resolve(t.Path)
		if err != nil {
			raw, _ := os.Readlink(t.Host)
			e.SymlinkTarget = raw
			return e
		}
		if sp, ok := f.SandboxPath(target.Host); ok {
			e.SymlinkTarget = sp
		}
		tfi, err := os.Stat(target.Host)
		if err != nil {
			return e
		}
		mode = tfi.Mode()
	}
	e.Type = fileType(mode)
	e.Mode = uint32(mode.Perm())
	if mode.IsRegular() {
		e.Metadata = ReadMetadata(t.Host)
	}
	return e
}

// fileType names a mode's type as envd's FileType.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return schema.FileTypeFile
	case m.IsDir():
		return schema.FileTypeDirectory
	case m&fs.ModeSymlink != 0:
		return schema.FileTypeSymlink
	}
	return schema.FileTypeUnspecified
}

// HostNames names ids from the host's user and group databases, falling back to the numbers (as
// envd does). Lookups are cached: ids rarely change names.
func HostNames(uid, gid uint32) (string, string) {
	return lookupName(&userNames, uid, lookupUser), lookupName(&groupNames, gid, lookupGroup)
}

var userNames, groupNames sync.Map // uint32 → string

func lookupName(cache *sync.Map, id uint32, lookup func(string) (string, error)) string {
	if v, ok := cache.Load(id); ok {
		return v.(string)
	}
	s := strconv.FormatUint(uint64(id), 10)
	if name, err := lookup(s); err == nil && name != "" {
		s = name
	}
	cache.Store(id, s)
	return s
}

func lookupUser(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGroup(id string) (string, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return "", err
	}
	return g.Name, nil
}
