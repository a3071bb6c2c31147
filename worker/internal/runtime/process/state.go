package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile, in a sandbox's root, records what Cleanup needs to kill the sandbox's processes after the
// worker crashed.
const stateFile = ".fleetbox-sandbox.json"

type state struct {
	// Pgid is the process group of the sandbox (the holder's pid).
	Pgid int `json:"pgid"`
	// StartTime is the holder's start time in clock ticks since boot (Linux), so a reused pid is not
	// mistaken for the holder; 0 where unknown.
	StartTime uint64    `json:"startTime,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func writeState(root string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := filepath.Join(root, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(root, stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readState(root string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(root, stateFile))
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode state: %w", err)
	}
	if st.Pgid <= 1 {
		return st, fmt.Errorf("state: invalid pgid %d", st.Pgid)
	}
	return st, nil
}

// holderAlive reports whether the holder recorded in st still runs (and is the same process).
func holderAlive(st state) bool {
	if !processExists(st.Pgid) {
		return false
	}
	if st.StartTime == 0 {
		return true
	}
	return processStartTime(st.Pgid) == st.StartTime
}
