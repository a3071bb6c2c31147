package bhyve

import (
	"net"
	"strings"
	"testing"
)

func TestLinkLocal(t *testing.T) {
	t.Parallel()
	tests := []struct{ mac, want string }{
		{"52:54:00:12:34:56", "fe80::5054:ff:fe12:3456%bridge1"}, // the classic qemu example
		{"02:fb:00:00:00:01", "fe80::fb:ff:fe00:1%bridge1"},      // locally administered: the bit flips to 0
		{"00:00:00:00:00:00", "fe80::200:ff:fe00:0%bridge1"},     // universal: the bit flips to 1
		{"ff:ff:ff:ff:ff:ff", "fe80::fdff:ffff:feff:ffff%bridge1"},
	}
	for _, tt := range tests {
		mac, err := net.ParseMAC(tt.mac)
		if err != nil {
			t.Fatal(err)
		}
		got, err := linkLocal(mac, "bridge1")
		if err != nil || got.String() != tt.want {
			t.Errorf("linkLocal(%s) = %s, %v; want %s", tt.mac, got, err, tt.want)
		}
		if !got.IsLinkLocalUnicast() {
			t.Errorf("%s is not link-local", got)
		}
	}
	if _, err := linkLocal(net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}, "b"); err == nil {
		t.Error("a 64-bit MAC accepted")
	}
}

func TestAgentAddr(t *testing.T) {
	t.Parallel()
	got := agentAddr("fbvm-abc", "bridge1", 49982)
	mac := macAddr("fbvm-abc")
	ll, _ := linkLocal(mac, "bridge1")
	if want := "[" + ll.String() + "]:49982"; got != want || !strings.HasPrefix(got, "[fe80::fb:") {
		t.Fatalf("agentAddr = %s, want %s", got, want)
	}
	// The address is one net.Dial takes.
	host, port, err := net.SplitHostPort(got)
	if err != nil || port != "49982" || !strings.HasSuffix(host, "%bridge1") {
		t.Fatalf("split %s: %s %s %v", got, host, port, err)
	}
	if macFor("fbvm-abc") != mac.String() {
		t.Fatal("macFor and macAddr differ")
	}
}
