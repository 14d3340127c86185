package stack

import (
	"flag"
	"regexp"
)

// flagParse parses the test flags early so TestMain can see -run.
func flagParse() {
	if !flag.Parsed() {
		flag.Parse()
	}
}

// needsKube reports whether the selected tests include one that needs the
// API server, so `go test -run Render` does not start it.
func needsKube() bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	re, err := regexp.Compile(f.Value.String())
	if err != nil {
		return true
	}
	for _, name := range kubeTests {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

var kubeTests = []string{
	"TestServerSideDryRunEveryObject",
	"TestDryRunMissingNamespace",
	"TestInstallRBACUpgradeUninstall",
	"TestBuyerStorageFallback",
	"TestMonitoringForcedOff",
}
