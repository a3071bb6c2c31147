package process

import (
	"path/filepath"
	"slices"
	"strings"

	"fleetbox.dev/worker/internal/runtime"
)

// DefaultPath is the PATH of sandbox processes: the system directories only (never a pyenv or other
// per-user shim directory of the worker's own environment).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// protected variables identify the sandbox (Cleanup finds leftover processes by E2B_SANDBOX_ID): the
// sandbox's env vars cannot override them.
var protected = []string{"E2B_SANDBOX", "E2B_SANDBOX_ID"}

// sandboxEnv is the environment of every process of a sandbox: defaults, then the sandbox's variables.
func sandboxEnv(root, id string, vars map[string]string) []string {
	base := []string{
		"HOME=" + filepath.Join(root, runtime.SandboxHome),
		"TMPDIR=" + filepath.Join(root, "tmp"),
		"USER=user",
		"LOGNAME=user",
		"LANG=C.UTF-8",
		"PATH=" + DefaultPath,
	}
	env := mergeEnv(base, vars)
	return append(env, "E2B_SANDBOX=true", "E2B_SANDBOX_ID="+id)
}

// mergeEnv returns base with vars set on top (sorted by name for a stable order); a name already in base
// is replaced in place. Protected names are never changed.
func mergeEnv(base []string, vars map[string]string) []string {
	out := append([]string(nil), base...)
	names := make([]string, 0, len(vars))
	for k := range vars {
		if k != "" && !strings.ContainsAny(k, "=\x00") && !slices.Contains(protected, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		kv := k + "=" + strings.ReplaceAll(vars[k], "\x00", "")
		if i := slices.IndexFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") }); i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// envValue returns the value of name in env, or "".
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
