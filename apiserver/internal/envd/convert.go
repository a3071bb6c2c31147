package envd

import (
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"fleetbox.dev/apiserver/internal/envd/proto/filesystem"
	"fleetbox.dev/apiserver/internal/envd/proto/process"
	"fleetbox.dev/schema"
)

// Conversions between the generated envd messages and the schema's bus messages.

func invalidArgument(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func configFromProto(c *process.ProcessConfig) schema.ProcessConfig {
	return schema.ProcessConfig{Cmd: c.GetCmd(), Args: c.GetArgs(), Envs: c.GetEnvs(), Cwd: c.GetCwd()}
}

func configToProto(c schema.ProcessConfig) *process.ProcessConfig {
	out := &process.ProcessConfig{Cmd: c.Cmd, Args: c.Args, Envs: c.Envs}
	if c.Cwd != "" {
		out.Cwd = &c.Cwd
	}
	return out
}

func selectorFromProto(s *process.ProcessSelector) (schema.ProcessSelector, error) {
	switch v := s.GetSelector().(type) {
	case *process.ProcessSelector_Pid:
		return schema.ProcessSelector{PID: v.Pid}, nil
	case *process.ProcessSelector_Tag:
		if v.Tag != "" {
			return schema.ProcessSelector{Tag: v.Tag}, nil
		}
	}
	return schema.ProcessSelector{}, invalidArgument("process.pid or process.tag is required")
}

func entryToProto(e schema.EntryInfo) *filesystem.EntryInfo {
	out := &filesystem.EntryInfo{
		Name:        e.Name,
		Type:        filesystem.FileType(filesystem.FileType_value[e.Type]),
		Path:        e.Path,
		Size:        e.Size,
		Mode:        e.Mode,
		Permissions: e.Permissions,
		Owner:       e.Owner,
		Group:       e.Group,
		Metadata:    e.Metadata,
	}
	if !e.ModifiedTime.IsZero() {
		out.ModifiedTime = timestamppb.New(e.ModifiedTime)
	}
	if e.SymlinkTarget != "" {
		out.SymlinkTarget = &e.SymlinkTarget
	}
	return out
}

func eventToProto(e schema.FsEvent) *filesystem.FilesystemEvent {
	out := &filesystem.FilesystemEvent{Name: e.Name, Type: filesystem.EventType(filesystem.EventType_value[e.Type])}
	if e.Entry != nil {
		out.Entry = entryToProto(*e.Entry)
	}
	return out
}
