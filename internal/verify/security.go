package verify

import (
	"context"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
)

// checkACSpec01 runs acceptance's AC-SPEC-01, the check hyhome audit
// --check runs, on the containers verify judges: every container carrying
// hy-home.tier, narrowed by the configured filters, except verify's own
// canaries (another run's may be alive).
func (v *Verifier) checkACSpec01(ctx context.Context, res *report.CheckResult) {
	src, err := source.New(source.Config{Engine: v.cfg.Engine, Host: v.cfg.Host, Logger: v.log, Now: v.cfg.Clock.Now})
	if err != nil {
		res.Error("%v", err)
		return
	}
	sel := source.Selection{ContainersOnly: true, Filters: append(append([]string(nil), v.cfg.Filters...), "label=hy-home.tier")}
	snap, err := src.Read(ctx, sel)
	if err != nil {
		res.Error("reading containers: %v", err)
		return
	}
	kept := snap.Containers[:0]
	for _, c := range snap.Containers {
		if _, canary := c.Labels[LabelCanary]; !canary {
			kept = append(kept, c)
		}
	}
	snap.Containers = kept
	judged := acceptance.CheckACSpec01(snap).Result()
	res.Status, res.Summary, res.Detail = judged.Status, judged.Summary, judged.Detail
}
