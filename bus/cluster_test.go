package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"fleetbox.dev/bus"
	"fleetbox.dev/bus/bustest"
	"fleetbox.dev/schema"
)

// The cluster configuration we ship must load in nats-server and describe a JetStream cluster.
func TestDeployedNATSConfigsParse(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../deploy/nats/*.conf")
	if len(files) < 4 {
		t.Fatalf("expected 3 cluster configs and a leaf config in deploy/nats, found %v", files)
	}
	for _, f := range files {
		opts, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if filepath.Base(f) == "leaf-site.conf" {
			if len(opts.LeafNode.Remotes) == 0 {
				t.Errorf("%s: no leaf remotes", f)
			}
			continue
		}
		if !opts.JetStream || opts.Cluster.Name != "fleetbox" || len(opts.Routes) != 3 || opts.ServerName == "" {
			t.Errorf("%s: jetstream=%v cluster=%q routes=%d name=%q", f, opts.JetStream, opts.Cluster.Name, len(opts.Routes), opts.ServerName)
		}
	}
	if _, err := os.Stat("../deploy/nats/README.md"); err != nil {
		t.Error(err)
	}
}

// With R3 buckets, losing any one node loses no record and keeps compare-and-set working.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	c := bustest.RunCluster(t, 3)
	nc := bustest.ConnectURL(t, c.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, nc, bus.Config{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 20 {
		r := schema.Record{ID: schema.NewSandboxID(), State: schema.StatePending}
		if _, err := b.CreateRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for node := range 3 {
		c.Stop(node)
		for _, id := range ids {
			bustest.Eventually(t, time.Minute, 100*time.Millisecond, func() error {
				// Each attempt is bounded: a request that went to the lost node's leader before the
				// cluster noticed is never answered, and must not hold the whole test.
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, _, err := b.UpdateRecord(actx, id, func(r schema.Record) (schema.Record, error) {
					r.Metadata = map[string]string{"node-down": string(rune('1' + node))}
					return r, nil
				})
				return err
			})
		}
		c.Restart(node)
		c.WaitForLeader()
	}
	all, err := b.ListRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ids) {
		t.Fatalf("%d records after node losses, want %d", len(all), len(ids))
	}
	for _, r := range all {
		if r.Metadata["node-down"] != "3" {
			t.Errorf("record %s missed an update: %v", r.ID, r.Metadata)
		}
	}
	if _, _, err := b.GetRecord(ctx, "missing"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatal(err)
	}
}
