package jail

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"fleetbox.dev/worker/internal/runtime"
)

var _ runtime.OwnerNamer = (*Sandbox)(nil)

// OwnerNames names uid and gid as the jail's own user database (/etc/passwd and /etc/group in the jail)
// does; unknown ids give "".
func (s *Sandbox) OwnerNames(uid, gid uint32) (owner, group string) {
	return lookupID(s.jailFile("/etc/passwd"), uid), lookupID(s.jailFile("/etc/group"), gid)
}

// jailFile is the host path of a file of the jail, its symlinks resolved as the jail sees them (so that a
// jail that made /etc/passwd a link does not make the worker read a host file); "" if it cannot be.
func (s *Sandbox) jailFile(p string) string {
	h, err := s.HostPath(p)
	if err != nil {
		return ""
	}
	return h
}

// FileOwner returns the host uid and gid of a jail user: the default user ("" or "user") is the
// configured UID:GID that processes run as (root when that is negative), "root" is 0:0, and any other
// name is looked up in the jail's own /etc/passwd (ok is false if it is not there).
func (s *Sandbox) FileOwner(user string) (uid, gid int, ok bool) {
	switch user {
	case "", runtime.DefaultUser:
		if s.rt.cfg.UID < 0 {
			return 0, 0, true
		}
		return s.rt.cfg.UID, max(s.rt.cfg.GID, 0), true
	case "root":
		return 0, 0, true
	}
	return lookupUser(s.jailFile("/etc/passwd"), user)
}

// lookupUser returns the uid and gid of name in a passwd(5) file (name:password:uid:gid:...).
func lookupUser(file, name string) (uid, gid int, ok bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 5)
		if len(fields) < 4 || fields[0] != name {
			continue
		}
		u, err1 := strconv.Atoi(fields[2])
		g, err2 := strconv.Atoi(fields[3])
		if err1 != nil || err2 != nil || u < 0 || g < 0 {
			return 0, 0, false
		}
		return u, g, true
	}
	return 0, 0, false
}

// lookupID returns the name of id in a passwd(5) or group(5) file: name:password:id:...
func lookupID(file string, id uint32) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	want := strconv.FormatUint(uint64(id), 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if fields := strings.SplitN(line, ":", 4); len(fields) >= 3 && fields[2] == want {
			return fields[0]
		}
	}
	return ""
}
