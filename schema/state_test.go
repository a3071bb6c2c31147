package schema

import "testing"

func TestTransitions(t *testing.T) {
	t.Parallel()
	all := []State{StatePending, StateStarting, StateRunning, StatePaused, StateKilling, StateKilled, StateFailed, StateLost}
	terminal := map[State]bool{StateKilled: true, StateFailed: true, StateLost: true}
	for _, from := range all {
		if from.Terminal() != terminal[from] {
			t.Errorf("%s.Terminal() = %v, want %v", from, from.Terminal(), terminal[from])
		}
		for _, to := range all {
			got := CanTransition(from, to)
			if terminal[from] && got {
				t.Errorf("terminal %s may move to %s", from, to)
			}
			if from == to && got {
				t.Errorf("self transition %s allowed", from)
			}
		}
	}
	// The paths the system relies on.
	for _, p := range [][2]State{
		{StatePending, StateStarting}, {StateStarting, StateRunning}, {StateRunning, StateKilled},
		{StatePending, StateKilled}, {StateRunning, StateLost}, {StateStarting, StateFailed},
		{StateRunning, StatePaused}, {StatePaused, StateRunning},
	} {
		if !CanTransition(p[0], p[1]) {
			t.Errorf("%s -> %s must be allowed", p[0], p[1])
		}
	}
	if CanTransition(StateRunning, StatePending) || CanTransition(StateRunning, StateStarting) {
		t.Error("a running sandbox must never be claimed again")
	}
}
