package schema

import "testing"

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "10.1.2.3/8": "10.0.0.0/8", "1.1.1.1": "1.1.1.1/32", "0.0.0.0/0": "0.0.0.0/0",
		"example.com": "", "*.example.com": "", "::1": "", "2001:db8::/32": "", "": "", "10.0.0.0/33": "",
	} {
		p, err := ParsePrefix(in)
		switch {
		case want == "" && (err == nil || CodeOf(err) != 400):
			t.Errorf("ParsePrefix(%q) = %v, %v; want a 400", in, p, err)
		case want != "" && (err != nil || p.String() != want):
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	if err := (Egress{Allow: []string{"1.1.1.1"}, Deny: []string{"nope"}}).Validate(); err == nil || CodeOf(err) != 400 {
		t.Errorf("Validate: %v", err)
	}
}
