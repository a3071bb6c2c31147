package runtime

import (
	"slices"
	"strings"
)

// ProtectedEnv identifies a sandbox to its processes (and lets a runtime find leftover processes by
// E2B_SANDBOX_ID): a sandbox's own env vars can never override them.
var ProtectedEnv = []string{"E2B_SANDBOX", "E2B_SANDBOX_ID"}

// SandboxEnv is the environment every runtime gives a sandbox's processes: base (HOME, PATH, ... as the
// runtime sees them), the sandbox's env vars on top, then the identifying variables.
func SandboxEnv(id string, base []string, vars map[string]string) []string {
	return append(MergeEnv(base, vars), "E2B_SANDBOX=true", "E2B_SANDBOX_ID="+id)
}

// MergeEnv returns base with vars set on top (sorted by name for a stable order); a name already in base
// is replaced in place. Invalid names and ProtectedEnv are skipped; NUL bytes are dropped from values.
func MergeEnv(base []string, vars map[string]string) []string {
	out := slices.Clone(base)
	names := make([]string, 0, len(vars))
	for k := range vars {
		if k != "" && !strings.ContainsAny(k, "=\x00") && !slices.Contains(ProtectedEnv, k) {
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

// EnvValue returns the value of name in env (the last one wins), or "".
func EnvValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
