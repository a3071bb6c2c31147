package bustest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"fleetbox.dev/bus"
)

// Cluster is a JetStream cluster of in-process servers on loopback ports, shaped like
// deploy/nats/nats-*.conf: JetStream on every node, one cluster, full-mesh routes.
type Cluster struct {
	t       testing.TB
	Servers []*server.Server
	cfgs    []bus.EmbeddedConfig
}

// RunCluster starts n servers and waits until JetStream has a meta leader. They stop with the test.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	for i := range n {
		c.cfgs = append(c.cfgs, bus.EmbeddedConfig{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Cluster:    &bus.ClusterConfig{Name: "test", Host: "127.0.0.1", Port: routePorts[i], Routes: routes},
		})
	}
	c.Servers = make([]*server.Server, n)
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	c.WaitForLeader()
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	s, err := bus.RunEmbedded(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start cluster node %d: %v", i+1, err)
	}
	c.Servers[i] = s
}

// URL lists every node's client URL, comma-separated, as clients and -nats flags take it.
func (c *Cluster) URL() string {
	var urls []string
	for _, cfg := range c.cfgs {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", cfg.Port))
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i down (its store stays for Restart).
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts node i again on the same ports with the same store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.start(i)
}

// WaitForLeader waits until the running nodes agree on a JetStream meta leader.
func (c *Cluster) WaitForLeader() {
	c.t.Helper()
	Eventually(c.t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, s := range c.Servers {
			if s != nil && s.JetStreamIsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no JetStream meta leader yet")
	})
}

// freePorts reserves n distinct loopback ports by binding and releasing them.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
