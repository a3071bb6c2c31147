package worker

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"

	"fleetbox.dev/schema"
)

// replyHeadroom is what a reply envelope may add to its payload within one bus message.
const replyHeadroom = 4 << 10

// fsFor returns a sandbox's file system and the home directory of a request's user.
func (w *Worker) fsFor(id, user string) (*sandbox, string, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, "", err
	}
	_, home, err := envdUser(user)
	if err != nil {
		return nil, "", err
	}
	return sb, home, nil
}

// opFsStat describes a file (a symlink as envd does: see fsops.FS.Entry).
func (w *Worker) opFsStat(_ context.Context, id string, req schema.FsRequest) (schema.EntryInfo, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	return sb.envd.fs.Stat(expandPath(home, req.Path))
}

// opFsListDir lists a directory down to a depth (default 1). The reply is one bus message, so a listing
// too large for it is refused with advice rather than lost.
func (w *Worker) opFsListDir(_ context.Context, id string, req schema.FsListRequest) ([]schema.EntryInfo, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return nil, err
	}
	entries, err := sb.envd.fs.List(expandPath(home, req.Path), req.Depth)
	if err != nil {
		return nil, err
	}
	if limit := int(w.bus.NC.MaxPayload()) - replyHeadroom; len(entries) > limit/512 {
		if b, err := json.Marshal(entries); err == nil && len(b) > limit {
			return nil, schema.Errorf(http.StatusInternalServerError,
				"listing of '%s' has %d entries, too many for one reply: list with a smaller depth", req.Path, len(entries))
		}
	}
	return entries, nil
}

// opFsMakeDir creates a directory and its parents (409 if it exists).
func (w *Worker) opFsMakeDir(_ context.Context, id string, req schema.FsRequest) (schema.EntryInfo, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	return sb.envd.fs.MakeDir(expandPath(home, req.Path), sb.fileOwner(req.User))
}

// opFsMove renames a file or directory, replacing the destination.
func (w *Worker) opFsMove(_ context.Context, id string, req schema.FsMoveRequest) (schema.EntryInfo, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.EntryInfo{}, err
	}
	return sb.envd.fs.Move(expandPath(home, req.Source), expandPath(home, req.Destination))
}

// opFsRemove removes a file or a directory tree; a missing path is fine.
func (w *Worker) opFsRemove(_ context.Context, id string, req schema.FsRequest) (schema.Empty, error) {
	sb, home, err := w.fsFor(id, req.User)
	if err != nil {
		return schema.Empty{}, err
	}
	return schema.Empty{}, sb.envd.fs.Remove(expandPath(home, req.Path))
}

// opEnvs returns the sandbox-global environment variables (those of the create request), as envd's
// GET /envs does.
func (w *Worker) opEnvs(_ context.Context, id string, _ schema.Empty) (map[string]string, error) {
	sb, err := w.lookup(id)
	if err != nil {
		return nil, err
	}
	env := maps.Clone(sb.envd.envVars)
	if env == nil {
		env = map[string]string{}
	}
	return env, nil
}
