package lifecycle

import (
	"reflect"
	"testing"
	"time"

	"fleetbox.dev/schema"
)

func TestParseMetadataQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"", nil, false},
		{"a=b", map[string]string{"a": "b"}, false},
		{"a%3Db%26c%3Dd", map[string]string{"a": "b", "c": "d"}, false},
		// What the JS SDK sends for {"k y": "v&1"}, after the first (normal) query decoding.
		{"k%2520y%3Dv%25261", map[string]string{"k y": "v&1"}, false},
		{"novalue", nil, true},
		{"%zz", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseMetadataQuery(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseMetadataQuery(%q) = %v, %v; want %v (err %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseStates(t *testing.T) {
	t.Parallel()
	got, err := ParseStates("running,paused")
	if err != nil || !got[schema.StateRunning] || !got[schema.StatePaused] {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := ParseStates("running,killed"); schema.CodeOf(err) != 400 {
		t.Fatalf("killed must be rejected: %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	r := cursorKey{ID: "abc123", At: time.Unix(1700000000, 123456789)}
	got, err := decodeCursor(encodeCursor(r))
	if err != nil || got.ID != r.ID || !got.At.Equal(r.At) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"!!", "eA", "MTIz"} {
		if _, err := decodeCursor(bad); schema.CodeOf(err) != 400 {
			t.Errorf("decodeCursor(%q) = %v, want 400", bad, err)
		}
	}
}

func FuzzParseMetadataQuery(f *testing.F) {
	for _, s := range []string{"a=b", "k%2520y%3Dv%25261", "%", "a=b&c", "=&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMetadataQuery(s)
		if err != nil && schema.CodeOf(err) != 400 {
			t.Fatalf("error with code %d: %v", schema.CodeOf(err), err)
		}
		if err == nil && s != "" && m == nil {
			t.Fatalf("nil map without error for %q", s)
		}
	})
}
