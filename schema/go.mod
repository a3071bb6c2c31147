module fleetbox.dev/schema

go 1.26.0
