package bhyve

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A VM whose agent never answers is destroyed when BootTimeout passes: nothing of it is left.
func TestCreateWaitsForTheAgent(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never says hello
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	stranger, err := net.Listen("tcp", "127.0.0.1:0") // something else answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Close() })
	go func() {
		for {
			c, err := stranger.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("220 smtp ready\r\n"))
			c.Close()
		}
	}()

	tests := []struct {
		name    string
		addr    string
		exits   bool // bhyve exits during the boot
		timeout time.Duration
		want    string
		fast    bool // fails before the timeout
	}{
		{name: "silent agent", addr: silent.Addr().String(), timeout: 300 * time.Millisecond, want: "did not answer within 300ms"},
		{name: "nothing listening", addr: closedAddr, timeout: 300 * time.Millisecond, want: "did not answer within 300ms"},
		{name: "not an agent", addr: stranger.Addr().String(), timeout: time.Minute, want: "agent protocol error", fast: true},
		{name: "bhyve exits", addr: closedAddr, exits: true, timeout: time.Minute, want: "bhyve exited while the guest booted", fast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, rec, l, data := newTest(t, func(c *Config) {
				c.BootTimeout = tt.timeout
				c.AgentAddress = func(string) string { return tt.addr }
			})
			if tt.exits {
				l.exitAtLaunch = true
			}
			began := time.Now()
			_, err := r.Create(t.Context(), spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Create: %v, want an error containing %q", err, tt.want)
			}
			if tt.fast && time.Since(began) > 10*time.Second {
				t.Errorf("took %v", time.Since(began))
			}
			checkLines(t, rec, append(slices.Clone(createCmds), "bhyvectl --vm=fbvm-abc --destroy", "ifconfig tap3 destroy", "zfs destroy -r tank/fb/vm/abc"))
			if _, err := os.Stat(filepath.Join(data, "vms", "abc")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("vm directory left: %v", err)
			}
			if !tt.exits {
				if got := l.proc.got(); !slices.Equal(got, []syscall.Signal{syscall.SIGCONT, syscall.SIGKILL}) {
					t.Errorf("bhyve signals %v, want CONT then KILL (the fake does not exit by itself)", got)
				}
			}
			select {
			case <-l.proc.Done():
			default:
				t.Error("bhyve still runs")
			}
		})
	}
}
