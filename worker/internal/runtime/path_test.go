package runtime

import (
	"errors"
	"slices"
	"testing"
)

func TestPathComponents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		err  error
	}{
		{"/", nil, nil},
		{"/a/./b//c/", []string{"a", "b", "c"}, nil},
		{"x.txt", []string{"home", "user", "x.txt"}, nil},
		{"../../etc/passwd", []string{"etc", "passwd"}, nil},
		{"../../../etc", nil, ErrPathEscape},
		{"/a/../..", nil, ErrPathEscape},
	}
	for _, tt := range tests {
		got, err := PathComponents(tt.in)
		if !errors.Is(err, tt.err) || !slices.Equal(got, tt.want) {
			t.Errorf("PathComponents(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
