// Package e2e holds fleetbox's black-box end-to-end tests.
//
// Everything lives in the _test.go files: TestMain builds the apiserver and
// worker binaries from the workspace, starts them as real processes on
// loopback ports and runs the Go checks (TestRawHTTP, TestRawExecute,
// TestWebSocketExecute) plus the unmodified E2B SDK suites in js/ and py/
// (TestJSSDK, TestPythonSDK). See README.md in this directory.
package e2e
