package envd

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"fleetbox.dev/apiserver/internal/envd/proto/process"
	"fleetbox.dev/apiserver/internal/envd/proto/process/processconnect"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/bus"
	"fleetbox.dev/schema"
)

// processService implements process.Process by relaying to the owner worker.
type processService struct {
	*service
}

var _ processconnect.ProcessHandler = (*processService)(nil)

// Start runs a process. Connect-Timeout-Ms (the context's deadline) is the process's lifetime, as in
// envd. The start event is sent as soon as the worker says the process runs; output and the end event
// follow as the worker streams them.
func (p *processService) Start(ctx context.Context, req *connect.Request[process.StartRequest], stream *connect.ServerStream[process.StartResponse]) error {
	user, err := runAsUser(req.Header())
	if err != nil {
		return err
	}
	m := req.Msg
	if m.GetProcess().GetCmd() == "" {
		return invalidArgument("process.cmd is required")
	}
	sreq := schema.ProcessStartRequest{
		Stream:  newStreamName(),
		Process: configFromProto(m.GetProcess()),
		User:    user,
		Tag:     m.GetTag(),
		// envd keeps a stdin pipe unless the client says stdin:false.
		Stdin: m.Stdin == nil || m.GetStdin(),
	}
	if m.Pty != nil {
		size := m.GetPty().GetSize()
		sreq.PTY = &schema.PTYSize{Cols: size.GetCols(), Rows: size.GetRows()}
	}
	if sreq.Timeout, err = lifetime(ctx); err != nil {
		return err
	}
	id := p.Record(ctx).ID
	rd, reply, err := openOp[schema.ProcessStartReply](ctx, p.service, id, schema.OpProcessStart, sreq.Stream, sreq)
	if err != nil {
		return rpcError(err)
	}
	defer rd.Close()
	return p.relayProcess(ctx, id, rd, reply.PID, func(ev *process.ProcessEvent) error {
		return stream.Send(&process.StartResponse{Event: ev})
	})
}

// Connect streams a running (or retained, finished) process's events from now on.
func (p *processService) Connect(ctx context.Context, req *connect.Request[process.ConnectRequest], stream *connect.ServerStream[process.ConnectResponse]) error {
	sel, err := selectorFromProto(req.Msg.GetProcess())
	if err != nil {
		return err
	}
	creq := schema.ProcessConnectRequest{Stream: newStreamName(), Process: sel}
	if creq.Timeout, err = lifetime(ctx); err != nil {
		return err
	}
	id := p.Record(ctx).ID
	rd, reply, err := openOp[schema.ProcessStartReply](ctx, p.service, id, schema.OpProcessConnect, creq.Stream, creq)
	if err != nil {
		return rpcError(err)
	}
	defer rd.Close()
	return p.relayProcess(ctx, id, rd, reply.PID, func(ev *process.ProcessEvent) error {
		return stream.Send(&process.ConnectResponse{Event: ev})
	})
}

// relayProcess sends the start event at once, then relays the worker's events. The worker's own start
// event is dropped: the client has already seen it.
func (p *processService) relayProcess(ctx context.Context, id string, rd *bus.StreamReader, pid uint32, send func(*process.ProcessEvent) error) error {
	start := &process.ProcessEvent{Event: &process.ProcessEvent_Start{Start: &process.ProcessEvent_StartEvent{Pid: pid}}}
	if err := send(start); err != nil {
		return err
	}
	keepalive := func() error {
		return send(&process.ProcessEvent{Event: &process.ProcessEvent_Keepalive{Keepalive: &process.ProcessEvent_KeepAlive{}}})
	}
	err := relayEvents(ctx, p.service, id, rd, func() *process.ProcessEvent { return new(process.ProcessEvent) },
		func(ev *process.ProcessEvent) error {
			if ev.GetStart() != nil {
				return nil
			}
			return send(ev)
		}, keepalive)
	return rpcError(err)
}

// List returns the sandbox's running processes.
func (p *processService) List(ctx context.Context, req *connect.Request[process.ListRequest]) (*connect.Response[process.ListResponse], error) {
	infos, err := lifecycle.Request[[]schema.ProcessInfo](ctx, p.Sandboxes, p.Record(ctx).ID, schema.OpProcessList, schema.Empty{})
	if err != nil {
		return nil, rpcError(err)
	}
	out := &process.ListResponse{Processes: make([]*process.ProcessInfo, 0, len(infos))}
	for _, in := range infos {
		pi := &process.ProcessInfo{Config: configToProto(in.Config), Pid: in.PID}
		if in.Tag != "" {
			pi.Tag = &in.Tag
		}
		out.Processes = append(out.Processes, pi)
	}
	return connect.NewResponse(out), nil
}

// SendInput writes to a process's stdin or terminal.
func (p *processService) SendInput(ctx context.Context, req *connect.Request[process.SendInputRequest]) (*connect.Response[process.SendInputResponse], error) {
	sel, err := selectorFromProto(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	in, err := inputFromProto(sel, req.Msg.GetInput())
	if err != nil {
		return nil, err
	}
	if err := p.call(ctx, schema.OpProcessInput, in); err != nil {
		return nil, err
	}
	return connect.NewResponse(&process.SendInputResponse{}), nil
}

// StreamInput takes a client stream of input: a start event naming the process, then data events,
// each written in order as SendInput would (the Python SDK's stream_input).
func (p *processService) StreamInput(ctx context.Context, stream *connect.ClientStream[process.StreamInputRequest]) (*connect.Response[process.StreamInputResponse], error) {
	var sel *schema.ProcessSelector
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *process.StreamInputRequest_Start:
			s, err := selectorFromProto(ev.Start.GetProcess())
			if err != nil {
				return nil, err
			}
			sel = &s
		case *process.StreamInputRequest_Data:
			if sel == nil {
				return nil, invalidArgument("the start event must come before data")
			}
			in, err := inputFromProto(*sel, ev.Data.GetInput())
			if err != nil {
				return nil, err
			}
			if err := p.call(ctx, schema.OpProcessInput, in); err != nil {
				return nil, err
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&process.StreamInputResponse{}), nil
}

func inputFromProto(sel schema.ProcessSelector, in *process.ProcessInput) (schema.ProcessInputRequest, error) {
	out := schema.ProcessInputRequest{Process: sel}
	switch v := in.GetInput().(type) {
	case *process.ProcessInput_Stdin:
		out.Stdin = v.Stdin
	case *process.ProcessInput_Pty:
		out.PTY = v.Pty
	default:
		return out, invalidArgument("input.stdin or input.pty is required")
	}
	return out, nil
}

// SendSignal signals a process; an unknown or finished one is not_found (the SDK's kill() → false).
func (p *processService) SendSignal(ctx context.Context, req *connect.Request[process.SendSignalRequest]) (*connect.Response[process.SendSignalResponse], error) {
	sel, err := selectorFromProto(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	sig := req.Msg.GetSignal()
	if sig != process.Signal_SIGNAL_SIGKILL && sig != process.Signal_SIGNAL_SIGTERM {
		return nil, invalidArgument("invalid signal %s: want SIGNAL_SIGKILL or SIGNAL_SIGTERM", sig)
	}
	if err := p.call(ctx, schema.OpProcessSignal, schema.ProcessSignalRequest{Process: sel, Signal: int(sig)}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&process.SendSignalResponse{}), nil
}

// CloseStdin closes a process's stdin.
func (p *processService) CloseStdin(ctx context.Context, req *connect.Request[process.CloseStdinRequest]) (*connect.Response[process.CloseStdinResponse], error) {
	sel, err := selectorFromProto(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.call(ctx, schema.OpProcessCloseStdin, schema.ProcessRequest{Process: sel}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&process.CloseStdinResponse{}), nil
}

// Update resizes a process's terminal.
func (p *processService) Update(ctx context.Context, req *connect.Request[process.UpdateRequest]) (*connect.Response[process.UpdateResponse], error) {
	sel, err := selectorFromProto(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	u := schema.ProcessUpdateRequest{Process: sel}
	if req.Msg.Pty != nil {
		size := req.Msg.GetPty().GetSize()
		u.PTY = &schema.PTYSize{Cols: size.GetCols(), Rows: size.GetRows()}
	}
	if err := p.call(ctx, schema.OpProcessUpdate, u); err != nil {
		return nil, err
	}
	return connect.NewResponse(&process.UpdateResponse{}), nil
}

// call runs a unary operation whose reply carries nothing.
func (s *service) call(ctx context.Context, op string, req any) error {
	_, err := lifecycle.Request[schema.Empty](ctx, s.Sandboxes, s.Record(ctx).ID, op, req)
	return rpcError(err)
}

// lifetime returns the time left before the context's deadline (envd's Connect-Timeout-Ms); 0 means
// none.
func lifetime(ctx context.Context) (time.Duration, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	left := time.Until(dl)
	if left <= 0 {
		return 0, connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded)
	}
	return left, nil
}
