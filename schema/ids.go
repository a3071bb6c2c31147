package schema

import (
	"crypto/rand"
	"encoding/hex"
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// SandboxIDLength is the length of sandbox ids, as E2B issues them.
const SandboxIDLength = 20

// NewSandboxID returns 20 random characters of [a-z0-9]. Ids contain no '-', since hosts of the form
// <port>-<id>.<domain> are split on it.
func NewSandboxID() string {
	var b [SandboxIDLength]byte
	rand.Read(b[:])
	for i := range b {
		// 252 = 7*36 keeps the modulo free of bias for bytes below it; the rest redraw.
		for b[i] >= 252 {
			var one [1]byte
			rand.Read(one[:])
			b[i] = one[0]
		}
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}

// ValidSandboxID reports whether s looks like an id this system issues: [a-z0-9], 1 to 64 long.
// (Accepting more than 20 keeps ids of other E2B-compatible systems valid in imports.)
func ValidSandboxID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// NewToken returns n random bytes as hex: access tokens, stream ids, context ids.
func NewToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ValidToken reports whether s is a plausible token or stream id: hex or [a-z0-9-], at most 128 long,
// and so safe to use as a NATS subject token.
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
