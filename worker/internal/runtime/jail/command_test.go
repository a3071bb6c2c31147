package jail

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"fleetbox.dev/worker/internal/runtime"
)

func TestJailCreateWithoutAddress(t *testing.T) {
	got := strings.Join(jailCreateCmd(jailParams{Name: "sbx-a", Path: "/r", Hostname: "a", DevfsRuleset: 4, Securelevel: 3}), " ")
	want := "jail -i -c name=sbx-a path=/r host.hostname=a persist mount.devfs devfs_ruleset=4 enforce_statfs=2 " +
		"securelevel=3 children.max=0 allow.raw_sockets=0 allow.mount=0 allow.chflags=0 ip4=disable ip6=disable"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestRctlAddSkipsZeroLimits(t *testing.T) {
	got := rctlAddCmds("sbx-a", limits{MemoryMB: 0, MaxProc: 10})
	if len(got) != 1 || strings.Join(got[0], " ") != "rctl -a jail:sbx-a:maxproc:deny=10" {
		t.Errorf("got %q", got)
	}
}

func TestPFRules(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.2")
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	for _, tt := range []struct {
		name string
		e    runtime.Egress
		want []string // the rules after the comment line, in order
	}{
		{"deny all", runtime.Egress{}, []string{
			"pass quick inet from 10.0.0.2 to 10.0.0.2",
			"block drop quick inet from 10.0.0.2 to any",
		}},
		{"allow list", runtime.Egress{Allow: p("198.51.100.7/32", "203.0.113.9/24")}, []string{
			"pass quick inet from 10.0.0.2 to 10.0.0.2",
			"table <allow> const { 198.51.100.7/32, 203.0.113.0/24 }",
			"pass out quick inet from 10.0.0.2 to <allow> keep state",
			"block drop quick inet from 10.0.0.2 to any",
		}},
		{"allow all but a deny list, allow wins", runtime.Egress{AllowAll: true, Allow: p("10.9.9.9/32"), Deny: p("10.0.0.0/8")}, []string{
			"pass quick inet from 10.0.0.2 to 10.0.0.2",
			"table <allow> const { 10.9.9.9/32 }",
			"pass out quick inet from 10.0.0.2 to <allow> keep state",
			"table <deny> const { 10.0.0.0/8 }",
			"block drop quick inet from 10.0.0.2 to <deny>",
			"pass out quick inet from 10.0.0.2 to any keep state",
		}},
	} {
		lines := strings.Split(strings.TrimSpace(string(pfRules("a", addr, tt.e))), "\n")
		if !strings.HasPrefix(lines[0], "# fleetbox sandbox a: ") || strings.Join(lines[1:], "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: rules\n%s", tt.name, strings.Join(lines, "\n"))
		}
		for _, l := range lines[1:] { // every rule is about the jail's own address: other traffic is never touched
			if !strings.HasPrefix(l, "table ") && !strings.Contains(l, "from 10.0.0.2 ") {
				t.Errorf("%s: rule %q matches traffic that is not the jail's", tt.name, l)
			}
		}
	}
}

func TestParsers(t *testing.T) {
	if _, err := parseJls([]byte("jid name path ip4.addr\n1 a\n")); err == nil {
		t.Error("short jls line accepted")
	}
	if _, err := parseJls([]byte("x a /p -\n")); err == nil {
		t.Error("bad jid accepted")
	}
	js, err := parseJls([]byte("jid name path ip4.addr\n\n2 sbx-a /p 10.0.0.2,10.0.0.9\n3 b /q -\n"))
	if err != nil || len(js) != 2 || js[0].Addr != netip.MustParseAddr("10.0.0.2") || js[1].Addr.IsValid() {
		t.Errorf("parseJls = %+v, %v", js, err)
	}
	for _, in := range []string{"", "x", "0", "-3"} {
		if _, err := parseJID([]byte(in)); err == nil {
			t.Errorf("parseJID(%q) accepted", in)
		}
	}
	if got := parseChildren([]byte("p\np/a\np/b/c\np/a\nq/x\n"), "p"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("parseChildren = %q", got)
	}
	if got := parseRctlJails([]byte("user:1:maxproc:deny=3\njail:b:x:deny=1\njail:a:y:deny=2\njail:b:z:deny=1\n")); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("parseRctlJails = %q", got)
	}
	if _, err := parseRctlUsage([]byte("memoryuse=abc\n")); err == nil {
		t.Error("bad usage accepted")
	}
	if got := parseDevfsMounts([]byte("devfs /dev devfs rw 0 0\ndevfs /j/dev devfs rw 0 0\n")); !slices.Equal(got, []string{"/dev", "/j/dev"}) {
		t.Errorf("parseDevfsMounts = %q", got)
	}
	for in, want := range map[string]bool{"": true, "T\nTs\nZ\n": true, "T\nS\n": false, "R\n": false, "I\n": false} {
		if allStopped([]byte(in)) != want {
			t.Errorf("allStopped(%q) != %v", in, want)
		}
	}
}
