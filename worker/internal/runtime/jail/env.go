package jail

import (
	"slices"
	"strings"
)

// DefaultPath is the PATH of processes in a jail (FreeBSD's, packages first).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// protected variables identify the sandbox: the sandbox's env vars cannot override them.
var protected = []string{"E2B_SANDBOX", "E2B_SANDBOX_ID"}

// sandboxEnv is the environment of every process in a jail: paths are the jail's own.
func sandboxEnv(id string, vars map[string]string) []string {
	base := []string{
		"HOME=/home/user",
		"TMPDIR=/tmp",
		"USER=user",
		"LOGNAME=user",
		"LANG=C.UTF-8",
		"PATH=" + DefaultPath,
	}
	return append(mergeEnv(base, vars), "E2B_SANDBOX=true", "E2B_SANDBOX_ID="+id)
}

// mergeEnv returns base with vars set on top, sorted by name; protected names are never changed.
func mergeEnv(base []string, vars map[string]string) []string {
	out := slices.Clone(base)
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if k != "" && !strings.ContainsAny(k, "=\x00") && !slices.Contains(protected, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv := k + "=" + strings.ReplaceAll(vars[k], "\x00", "")
		if i := slices.IndexFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") }); i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
