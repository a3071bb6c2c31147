package jail

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fleetbox.dev/worker/internal/runtime"
)

var _ runtime.OwnerNamer = (*Sandbox)(nil)

// OwnerNames names uid and gid as the jail's own user database (etc/passwd and etc/group under its
// root) does; unknown ids give "".
func (s *Sandbox) OwnerNames(uid, gid uint32) (owner, group string) {
	return lookupID(filepath.Join(s.root, "etc", "passwd"), uid), lookupID(filepath.Join(s.root, "etc", "group"), gid)
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
