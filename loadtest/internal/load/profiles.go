package load

import (
	"fmt"
	"slices"
	"time"
)

// Profile is a named load: a shape plus what each sandbox does.
type Profile struct {
	Name        string
	Description string
	Shape       Shape
	Code        string // run_code in each sandbox; "" = none
	Command     string // command in each sandbox; "" = none
}

// Profiles are the named loads `loadtest run -profile NAME` knows. Flags given next to -profile override
// its fields.
var Profiles = []Profile{
	{Name: "smoke", Description: "5 sequential lifecycles with 1+1: is the deployment alive and answering",
		Shape: Shape{Kind: Sequential, N: 5}, Code: "1+1"},
	{Name: "sequential", Description: "100 create+kill one at a time: the create latency of an idle system",
		Shape: Shape{Kind: Sequential, N: 100}},
	{Name: "tti", Description: "100 sequential create + 1+1 + kill: time to interactive",
		Shape: Shape{Kind: Sequential, N: 100}, Code: "1+1"},
	{Name: "burst50", Description: "50 creates at once, 4 rounds a second apart (create+kill)",
		Shape: Shape{Kind: Burst, N: 50, Rounds: 4, Pause: time.Second}},
	{Name: "burst100", Description: "100 creates at once (computesdk's burst shape), create + 1+1 + kill",
		Shape: Shape{Kind: Burst, N: 100}, Code: "1+1"},
	{Name: "c50", Description: "50 concurrent create+kill loops for 10 s",
		Shape: Shape{Kind: Concurrent, Concurrency: 50, Duration: 10 * time.Second}},
	{Name: "churn", Description: "full lifecycles (create, 1+1, kill) at concurrency 8 for 20 s",
		Shape: Shape{Kind: Concurrent, Concurrency: 8, Duration: 20 * time.Second}, Code: "1+1"},
	{Name: "poisson", Description: "open-loop Poisson arrivals at 20/s for 30 s, each sandbox runs 1+1 and lives 2 s",
		Shape: Shape{Kind: Poisson, Rate: 20, Duration: 30 * time.Second, Dwell: 2 * time.Second}, Code: "1+1"},
	{Name: "idle1000", Description: "1,000 sandboxes kept alive at once (created 50 at a time), 1+1 in 5 of them, then all killed",
		Shape: Shape{Kind: Idle, N: 1000, Concurrency: 50, Sample: 5, Dwell: 2 * time.Second}, Code: "1+1"},
}

// Lookup returns the profile named name.
func Lookup(name string) (Profile, error) {
	i := slices.IndexFunc(Profiles, func(p Profile) bool { return p.Name == name })
	if i < 0 {
		names := make([]string, len(Profiles))
		for j, p := range Profiles {
			names[j] = p.Name
		}
		return Profile{}, fmt.Errorf("unknown profile %q (one of %v)", name, names)
	}
	return Profiles[i], nil
}
