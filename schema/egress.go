package schema

import (
	"fmt"
	"net/http"
	"net/netip"
)

// ParsePrefix reads one egress entry: an IPv4 CIDR or address (a /32). Host names, IPv6 and wildcard
// domains are refused with a 400 naming the entry.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return netip.Prefix{}, Errorf(http.StatusBadRequest, "egress entry %q: only IPv4 is supported", s)
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return netip.Prefix{}, Errorf(http.StatusBadRequest, "egress entry %q: only IPv4 is supported", s)
		}
		return netip.PrefixFrom(a, 32), nil
	}
	return netip.Prefix{}, Errorf(http.StatusBadRequest, "egress entry %q is not an IPv4 address or CIDR (domain rules are not supported)", s)
}

// ParsePrefixes reads a list of egress entries.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Validate checks every entry of e.
func (e Egress) Validate() error {
	if _, err := ParsePrefixes(e.Allow); err != nil {
		return fmt.Errorf("allowOut: %w", err)
	}
	if _, err := ParsePrefixes(e.Deny); err != nil {
		return fmt.Errorf("denyOut: %w", err)
	}
	return nil
}

// Restricts reports whether e blocks anything: a policy that allows every destination and denies none
// needs no enforcement.
func (e Egress) Restricts() bool { return !e.AllowAll || len(e.Deny) > 0 }
