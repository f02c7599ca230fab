package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// host-devices: host devices and device cgroup rules exposed to containers.
var ruleHostDevices = &Rule{
	ID:           "host-devices",
	Requirements: []string{"CIS-DOCKER", "NFR-SEC-01"},
	Severity:     Warning,
	Description:  "Host devices should not be exposed to containers; disks, memory and unknown devices must not be.",
	Remediation:  "Remove the `devices:` entry and any `device_cgroup_rules`, or justify a peripheral (GPU, serial adapter) in an ADR.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkHostDevices,
}

func checkHostDevices(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for _, d := range w.Devices {
		if why := workload.DeviceDanger(d.Host); why != "" {
			vs = append(vs, Violation{Message: fmt.Sprintf("exposes host device %s, which %s", d.Host, why), Pos: w.At(d.Pos), Severity: Error})
			continue
		}
		vs = append(vs, Violation{Message: fmt.Sprintf("exposes host device %s", d.Host), Pos: w.At(d.Pos)})
	}
	for _, r := range w.DeviceCgroupRules {
		vs = append(vs, Violation{Message: fmt.Sprintf("device cgroup rule %q lets the container use device nodes by number (\"a *:* rwm\" is every device)", r), Pos: w.At(w.DeviceCgroupRulesPos), Severity: Error})
	}
	return vs
}
