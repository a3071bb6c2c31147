package envd

import (
	"context"
	"encoding/json"

	"connectrpc.com/connect"

	"fleetbox.dev/apiserver/internal/envd/proto/filesystem"
	"fleetbox.dev/apiserver/internal/envd/proto/filesystem/filesystemconnect"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
)

// filesystemService implements filesystem.Filesystem by relaying to the owner worker. Every call may
// name a run-as user (Authorization: Basic), the base of relative paths.
type filesystemService struct {
	*service
}

var _ filesystemconnect.FilesystemHandler = (*filesystemService)(nil)

// entryOp runs an operation whose reply is one EntryInfo.
func entryOp(ctx context.Context, s *service, op string, req any) (*filesystem.EntryInfo, error) {
	e, err := lifecycle.Request[schema.EntryInfo](ctx, s.Sandboxes, s.Record(ctx).ID, op, req)
	if err != nil {
		return nil, rpcError(err)
	}
	return entryToProto(e), nil
}

func (f *filesystemService) Stat(ctx context.Context, req *connect.Request[filesystem.StatRequest]) (*connect.Response[filesystem.StatResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	e, err := entryOp(ctx, f.service, schema.OpFsStat, schema.FsRequest{Path: req.Msg.GetPath(), User: user})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystem.StatResponse{Entry: e}), nil
}

func (f *filesystemService) MakeDir(ctx context.Context, req *connect.Request[filesystem.MakeDirRequest]) (*connect.Response[filesystem.MakeDirResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	e, err := entryOp(ctx, f.service, schema.OpFsMakeDir, schema.FsRequest{Path: req.Msg.GetPath(), User: user})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystem.MakeDirResponse{Entry: e}), nil
}

func (f *filesystemService) Move(ctx context.Context, req *connect.Request[filesystem.MoveRequest]) (*connect.Response[filesystem.MoveResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	mv := schema.FsMoveRequest{Source: req.Msg.GetSource(), Destination: req.Msg.GetDestination(), User: user}
	e, err := entryOp(ctx, f.service, schema.OpFsMove, mv)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystem.MoveResponse{Entry: e}), nil
}

func (f *filesystemService) ListDir(ctx context.Context, req *connect.Request[filesystem.ListDirRequest]) (*connect.Response[filesystem.ListDirResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	depth := int(req.Msg.GetDepth())
	if depth == 0 {
		depth = 1 // clients that omit it mean one level, as envd does
	}
	lreq := schema.FsListRequest{Path: req.Msg.GetPath(), Depth: depth, User: user}
	entries, err := lifecycle.Request[[]schema.EntryInfo](ctx, f.Sandboxes, f.Record(ctx).ID, schema.OpFsListDir, lreq)
	if err != nil {
		return nil, rpcError(err)
	}
	out := &filesystem.ListDirResponse{Entries: make([]*filesystem.EntryInfo, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, entryToProto(e))
	}
	return connect.NewResponse(out), nil
}

func (f *filesystemService) Remove(ctx context.Context, req *connect.Request[filesystem.RemoveRequest]) (*connect.Response[filesystem.RemoveResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	if err := f.call(ctx, schema.OpFsRemove, schema.FsRequest{Path: req.Msg.GetPath(), User: user}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystem.RemoveResponse{}), nil
}

// WatchDir streams a directory's changes: the start event once the worker watches, then its events.
func (f *filesystemService) WatchDir(ctx context.Context, req *connect.Request[filesystem.WatchDirRequest], stream *connect.ServerStream[filesystem.WatchDirResponse]) error {
	user, err := runAsUser(req.Header())
	if err != nil {
		return err
	}
	m := req.Msg
	wreq := schema.FsWatchRequest{Stream: newStreamName(), Path: m.GetPath(), Recursive: m.GetRecursive(), IncludeEntry: m.GetIncludeEntry(), User: user}
	id := f.Record(ctx).ID
	rd, _, err := openOp[json.RawMessage](ctx, f.service, id, schema.OpFsWatch, wreq.Stream, wreq)
	if err != nil {
		return rpcError(err)
	}
	defer rd.Close()
	start := &filesystem.WatchDirResponse{Event: &filesystem.WatchDirResponse_Start{Start: &filesystem.WatchDirResponse_StartEvent{}}}
	if err := stream.Send(start); err != nil {
		return err
	}
	keepalive := func() error {
		return stream.Send(&filesystem.WatchDirResponse{Event: &filesystem.WatchDirResponse_Keepalive{Keepalive: &filesystem.WatchDirResponse_KeepAlive{}}})
	}
	err = relayEvents(ctx, f.service, id, rd, func() *filesystem.WatchDirResponse { return new(filesystem.WatchDirResponse) },
		func(ev *filesystem.WatchDirResponse) error {
			if ev.GetStart() != nil {
				return nil // sent above
			}
			return stream.Send(ev)
		}, keepalive)
	return rpcError(err)
}

func (f *filesystemService) CreateWatcher(ctx context.Context, req *connect.Request[filesystem.CreateWatcherRequest]) (*connect.Response[filesystem.CreateWatcherResponse], error) {
	user, err := runAsUser(req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	wreq := schema.FsWatchRequest{Path: m.GetPath(), Recursive: m.GetRecursive(), IncludeEntry: m.GetIncludeEntry(), User: user}
	w, err := lifecycle.Request[schema.WatcherRequest](ctx, f.Sandboxes, f.Record(ctx).ID, schema.OpFsWatcherCreate, wreq)
	if err != nil {
		return nil, rpcError(err)
	}
	return connect.NewResponse(&filesystem.CreateWatcherResponse{WatcherId: w.WatcherID}), nil
}

func (f *filesystemService) GetWatcherEvents(ctx context.Context, req *connect.Request[filesystem.GetWatcherEventsRequest]) (*connect.Response[filesystem.GetWatcherEventsResponse], error) {
	wr := schema.WatcherRequest{WatcherID: req.Msg.GetWatcherId()}
	evs, err := lifecycle.Request[[]schema.FsEvent](ctx, f.Sandboxes, f.Record(ctx).ID, schema.OpFsWatcherEvents, wr)
	if err != nil {
		return nil, rpcError(err)
	}
	out := &filesystem.GetWatcherEventsResponse{Events: make([]*filesystem.FilesystemEvent, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, eventToProto(e))
	}
	return connect.NewResponse(out), nil
}

func (f *filesystemService) RemoveWatcher(ctx context.Context, req *connect.Request[filesystem.RemoveWatcherRequest]) (*connect.Response[filesystem.RemoveWatcherResponse], error) {
	if err := f.call(ctx, schema.OpFsWatcherRemove, schema.WatcherRequest{WatcherID: req.Msg.GetWatcherId()}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystem.RemoveWatcherResponse{}), nil
}
