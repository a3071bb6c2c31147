module fleetbox.dev/loadtest

go 1.26.0

require fleetbox.dev/schema v0.0.0

replace fleetbox.dev/schema => ../schema

require fleetbox.dev/bus v0.0.0

replace fleetbox.dev/bus => ../bus
