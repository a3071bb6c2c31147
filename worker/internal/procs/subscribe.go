package procs

// subBuffer is how many events a subscription holds before the process's output waits for it: a slow
// reader slows the process down (as a full pipe would) rather than filling memory.
const subBuffer = 64

// Subscription receives the events of one process: its start event first, then the output produced
// while subscribed, then its end. A process that had already ended gives start and end.
type Subscription struct {
	p    *Process
	ch   chan Event
	gone chan struct{}
}

// Events delivers the events. It is closed after the end event, or without one when the table closed
// while the subscriber was not reading.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Process returns the process subscribed to.
func (s *Subscription) Process() *Process { return s.p }

// Close stops the subscription; the process's output no longer waits for it. It is idempotent.
func (s *Subscription) Close() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	select {
	case <-s.gone:
		return
	default:
	}
	close(s.gone)
	delete(s.p.subs, s)
}

// Subscribe returns a new subscription to the process's events from now on.
func (p *Process) Subscribe() *Subscription {
	s := &Subscription{p: p, ch: make(chan Event, subBuffer), gone: make(chan struct{})}
	s.ch <- Event{Kind: KindStart, PID: p.pid}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.end != nil {
		s.ch <- Event{Kind: KindEnd, PID: p.pid, End: p.end}
		close(s.ch)
		return s
	}
	p.subs[s] = struct{}{}
	return s
}

// broadcast hands ev to every current subscriber, waiting for those whose buffer is full unless they
// leave or the table closes. Output nobody subscribes to is dropped.
func (p *Process) broadcast(ev Event) {
	p.mu.Lock()
	if len(p.subs) == 0 {
		p.mu.Unlock()
		return
	}
	subs := make([]*Subscription, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	for _, s := range subs {
		s.send(ev)
	}
}

func (s *Subscription) send(ev Event) {
	select {
	case s.ch <- ev:
	case <-s.gone:
	case <-s.p.table.closing:
		// The sandbox is going away: nobody waits for this output, and a stuck reader must not hold up
		// the kill. One last non-blocking try keeps the order for readers that keep up.
		select {
		case s.ch <- ev:
		default:
		}
	}
}

// finish records the end and delivers it to every subscriber, then closes their channels. The pumps
// have finished, so nothing else sends any more.
func (p *Process) finish(end *End) {
	p.mu.Lock()
	p.end = end
	subs := make([]*Subscription, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.subs = map[*Subscription]struct{}{}
	p.mu.Unlock()
	for _, s := range subs {
		s.send(Event{Kind: KindEnd, PID: p.pid, End: end})
		close(s.ch)
	}
}
