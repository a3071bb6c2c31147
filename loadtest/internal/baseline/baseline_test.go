package baseline

import (
	"os"
	"testing"

	"fleetbox.dev/bus"
)

func TestHTTPRoundTrip(t *testing.T) {
	ds, err := HTTPRoundTrip(t.Context(), 20)
	if err != nil || len(ds) != 20 {
		t.Fatalf("HTTPRoundTrip = %d samples, %v", len(ds), err)
	}
}

func TestPythonSpawn(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	ds, err := PythonSpawn(t.Context(), "/usr/bin/python3", 3)
	if err != nil || len(ds) != 3 || ds[0] <= 0 {
		t.Fatalf("PythonSpawn = %v, %v", ds, err)
	}
	if _, err := PythonSpawn(t.Context(), "/nonexistent/python", 1); err == nil {
		t.Error("a missing interpreter did not fail")
	}
}

func TestNATSRoundTrip(t *testing.T) {
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	ds, err := NATSRoundTrip(t.Context(), ns.ClientURL(), 100)
	if err != nil || len(ds) != 100 {
		t.Fatalf("NATSRoundTrip = %d samples, %v", len(ds), err)
	}
	if _, err := NATSRoundTrip(t.Context(), "nats://127.0.0.1:1", 1); err == nil {
		t.Error("no server, no error")
	}
}
