//go:build !race

package e2e

// raceBinary says the tests run with -race, so the paddock binary they
// drive is built with the race detector too.
const raceBinary = false
